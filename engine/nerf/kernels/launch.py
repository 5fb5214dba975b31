"""Kernel launches that do Taichi's per-argument Python work once per signature instead of once per launch.

Taichi 1.7.4 re-derives, on every launch, each argument's template key (dtype, rank, grad flag) and type checks and
then fills the launch context through a chain of nested closures: about 0.3 ms of Python per launch on this CPU,
~13 launches per frame, which on CUDA is most of a 512^2 frame (the GPU waits for Python). `fast_launch` wraps a
@ti.kernel: the first launch of each signature goes through Taichi's own path (which compiles it), later ones with
the same signature only fill a launch context with tensor pointers and shapes, ints and floats, and launch the
remembered compiled kernel.

Signature: every tensor's dtype, rank and device plus the template arguments' values. A tensor that requires grad,
is not contiguous or is not a torch tensor, a kernel with a return value, or another Taichi version takes the
ordinary path, which keeps all of Taichi's behaviour (and its error messages).
"""
from __future__ import annotations

import functools
from typing import Any

import taichi as ti
import torch
from taichi.lang import impl

SUPPORTED_TAICHI = (1, 7, 4)
"""The Taichi version whose launch internals (Kernel.arguments, compiled_kernels, make_launch_context) this uses."""


class FastKernel:
    """A @ti.kernel callable as before; see the module docstring. `fast_launches` counts launches that skipped
    Taichi's Python path (tests read it)."""

    def __init__(self, kernel) -> None:
        self.kernel = kernel
        self.fast_launches = 0
        self._plan: list[tuple[str, tuple[int, ...]]] | None = None
        self._compiled: dict[tuple, tuple[Any, Any]] = {}
        self._cuda = False  # Taichi's arch: tensors of the other device take Taichi's (copying) path
        self._program_seen = None  # compiled kernels belong to one Taichi program (a ti.reset starts another)
        functools.update_wrapper(self, kernel)

    def __call__(self, *args):
        plan = self._plan if self._plan is not None else self._make_plan()
        if not plan:
            return self.kernel(*args)
        key = self._signature(plan, args, self._cuda)
        entry = self._compiled.get(key) if key is not None else None
        program = self._program()
        if program is not self._program_seen:  # a new Taichi program: the remembered kernels died with the old
            self._compiled.clear()
            self._program_seen = program
            entry = None
        if entry is None:
            result = self.kernel(*args)  # Taichi's own path: compiles, checks, launches
            if key is not None:
                self._compiled[key] = self._lookup(args, program)
            return result
        t_kernel, compiled = entry
        context = t_kernel.make_launch_context()
        for (kind, index), value in zip(plan, args):
            if kind == "array":
                context.set_arg_external_array_with_shape(
                    index, value.data_ptr(), value.element_size() * value.nelement(), tuple(value.shape), 0)
            elif kind == "int":
                context.set_arg_int(index, int(value))
            elif kind == "float":
                context.set_arg_float(index, float(value))
        program.launch_kernel(compiled, context)
        self.fast_launches += 1
        return None

    def _make_plan(self) -> list[tuple[str, tuple[int, ...]]]:
        """(kind, launch-context index) per argument; [] (always Taichi's path) when anything is unsupported."""
        plan: list[tuple[str, tuple[int, ...]]] = []
        primal = getattr(self.kernel, "_primal", None)
        version = tuple(getattr(ti, "__version__", ()))
        if primal is None or version != SUPPORTED_TAICHI or primal.return_type is not None:
            self._plan = plan
            return plan
        from taichi._lib import core
        from taichi.types import ndarray_type, primitive_types

        self._cuda = impl.current_cfg().arch == core.Arch.cuda

        slot = 0
        for argument in primal.arguments:
            anno = argument.annotation
            if isinstance(anno, ti.template):
                plan.append(("template", ()))
                continue
            if isinstance(anno, ndarray_type.NdarrayType) and id(anno.dtype) in primitive_types.type_ids:
                kind = "array"
            elif id(anno) in primitive_types.real_type_ids:
                kind = "float"
            elif id(anno) in primitive_types.integer_type_ids and anno in (ti.i32, ti.i64):
                kind = "int"
            else:  # matrices, structs, unsigned ints, textures, arg packs
                self._plan = []
                return self._plan
            plan.append((kind, (slot,)))
            slot += 1
        self._plan = plan
        return plan

    @staticmethod
    def _signature(plan, args, cuda: bool) -> tuple | None:
        """The compiled kernel's identity for these arguments, or None when they must take Taichi's path."""
        if len(args) != len(plan):
            return None
        key = []
        for (kind, _), value in zip(plan, args):
            if kind == "array":
                if (type(value) is not torch.Tensor or value.is_cuda != cuda or value.requires_grad
                        or not value.is_contiguous()):
                    return None
                key.append((value.dtype, value.dim()))
            elif kind == "template":
                try:
                    hash(value)
                except TypeError:
                    return None
                key.append(value)
            elif kind == "float" and not isinstance(value, (int, float)):
                return None
            elif kind == "int" and not isinstance(value, int):
                return None
        return tuple(key)

    def _lookup(self, args, program) -> tuple[Any, Any]:
        """The C++ kernel and compiled data Taichi's path just built for these arguments."""
        primal = self.kernel._primal
        t_kernel = primal.compiled_kernels[primal.ensure_compiled(*args)]
        return t_kernel, program.compile_kernel(program.config(), program.get_device_caps(), t_kernel)

    @staticmethod
    def _program():
        return impl.get_runtime().prog


def fast_launch(kernel) -> FastKernel:
    """Decorate a @ti.kernel (put it above @ti.kernel) so repeated launches skip Taichi's per-argument Python."""
    return FastKernel(kernel)
