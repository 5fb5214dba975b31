"""Frame upload: RGBA tensors/arrays -> GL textures, by host copy or by CUDA-GL interop, behind one interface."""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

GL_TEXTURE_2D = 0x0DE1
# moderngl texture dtypes by element type; both sample as normalised [0, 1] floats in the shader.
_GL_DTYPES = {np.dtype(np.uint8): "f1", np.dtype(np.float16): "f2", np.dtype(np.float32): "f4"}


class InteropError(RuntimeError):
    """CUDA-GL interop could not start or failed; the caller falls back to host upload."""


def is_cuda_tensor(rgba: Any) -> bool:
    """True for a torch tensor on a CUDA device (checked without importing torch)."""
    device = getattr(rgba, "device", None)
    return getattr(device, "type", None) == "cuda"


def to_host_array(rgba: Any) -> np.ndarray:
    """[H, W, C] torch tensor (any device) or array -> C-contiguous numpy of a GL-uploadable dtype.

    uint8, float16 and float32 pass through; other types become float32 (float64) or are refused.
    """
    if hasattr(rgba, "detach"):
        rgba = rgba.detach().cpu().numpy()
    array = np.asarray(rgba)
    if array.ndim != 3 or array.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"FrameImage.rgba must be [H, W, 4] (or 1-3 channels), got shape {array.shape}")
    if array.dtype not in _GL_DTYPES:
        if array.dtype == np.float64:
            array = array.astype(np.float32)
        else:
            raise ValueError(
                f"FrameImage.rgba dtype {array.dtype} is not supported: use uint8, float16 or float32 in [0, 1]"
            )
    return np.ascontiguousarray(array)


class HostUpload:
    """Writes CPU pixels into a texture; keeps the texture while size, channels and dtype stay the same."""

    name = "host"

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.texture: Any = None
        self._key: tuple | None = None

    def upload(self, rgba: Any) -> Any:
        """rgba: [H, W, C] uint8/float16/float32 numpy or torch (a CUDA tensor is copied to the host)."""
        array = to_host_array(rgba)
        height, width, channels = array.shape
        key = (width, height, channels, array.dtype)
        if key != self._key:
            self.release()
            self.texture = self.ctx.texture((width, height), channels, dtype=_GL_DTYPES[array.dtype])
            self._key = key
        self.texture.write(array)
        return self.texture

    def release(self) -> None:
        if self.texture is not None:
            self.texture.release()
        self.texture = None
        self._key = None


def load_cudart() -> Any:
    """The CUDA runtime bindings of cuda-python (new module path first, then the pre-13.0 one)."""
    try:
        from cuda.bindings import runtime
    except ImportError:
        try:
            from cuda import cudart as runtime  # cuda-python < 12.9 only
        except ImportError as error:
            raise InteropError(
                "cuda-python is not installed: `pip install 'syncanim[gpu]'` (or `pip install cuda-python`) "
                f"enables CUDA-GL interop ({error})"
            ) from error
    return runtime


class CudaGLUpload:
    """Copies a CUDA tensor straight into a registered GL texture (no trip through host memory).

    The GL context must be current on this thread: map, copy and unmap all run on the render thread,
    on torch's current stream so the copy is ordered after the kernels that wrote the tensor.
    RGBA only (CUDA cannot register 3-channel textures).
    """

    name = "cuda-gl"

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.rt = load_cudart()
        self.texture: Any = None
        self._resource: Any = None
        self._key: tuple | None = None
        # Register a 1x1 probe now, so a driver or context mismatch (e.g. GL on an integrated GPU)
        # shows up when the path is chosen instead of on the first frame.
        try:
            self._register(1, 1, "f1")
        except InteropError:
            self.release()
            raise

    def _check(self, result: Any, what: str) -> Any:
        error, *values = result if isinstance(result, tuple) else (result,)
        if int(error) != 0:
            _, text = self.rt.cudaGetErrorString(error)
            detail = text.decode() if isinstance(text, bytes) else text
            raise InteropError(f"{what} failed: {getattr(error, 'name', error)} ({detail})")
        return values[0] if len(values) == 1 else values

    def _register(self, width: int, height: int, dtype: str) -> None:
        self.release()
        self.texture = self.ctx.texture((width, height), 4, dtype=dtype)
        flags = self.rt.cudaGraphicsRegisterFlags.cudaGraphicsRegisterFlagsWriteDiscard
        resource = self._check(
            self.rt.cudaGraphicsGLRegisterImage(self.texture.glo, GL_TEXTURE_2D, flags), "cudaGraphicsGLRegisterImage"
        )
        if resource is None or int(resource) == 0:
            # cuda-python 12.9.3 / 13.0.2 return success with a null handle (NVIDIA/cuda-python#1122).
            raise InteropError(
                "cudaGraphicsGLRegisterImage returned a null resource: upgrade cuda-python "
                "(>= 12.9.4 on CUDA 12 drivers, >= 13.0.3 on CUDA 13)"
            )
        self._resource = resource
        self._key = (width, height, dtype)

    def upload(self, rgba: Any) -> Any:
        """rgba: CUDA torch tensor [H, W, 4], uint8/float16/float32 in [0, 1] -> the registered texture."""
        import torch

        if rgba.ndim != 3 or rgba.shape[2] != 4:
            raise InteropError(f"CUDA-GL upload needs [H, W, 4] RGBA, got shape {tuple(rgba.shape)}")
        if rgba.dtype == torch.float64:
            rgba = rgba.float()
        dtype = {torch.uint8: "f1", torch.float16: "f2", torch.float32: "f4"}.get(rgba.dtype)
        if dtype is None:
            raise InteropError(f"CUDA-GL upload: unsupported dtype {rgba.dtype}; use uint8, float16 or float32")
        rgba = rgba.contiguous()
        height, width = int(rgba.shape[0]), int(rgba.shape[1])
        if (width, height, dtype) != self._key:
            self._register(width, height, dtype)
        stream = torch.cuda.current_stream(rgba.device).cuda_stream
        row_bytes = width * 4 * rgba.element_size()
        self._check(self.rt.cudaGraphicsMapResources(1, self._resource, stream), "cudaGraphicsMapResources")
        try:
            array = self._check(
                self.rt.cudaGraphicsSubResourceGetMappedArray(self._resource, 0, 0),
                "cudaGraphicsSubResourceGetMappedArray",
            )
            self._check(
                self.rt.cudaMemcpy2DToArrayAsync(
                    array, 0, 0, rgba.data_ptr(), row_bytes, row_bytes, height,
                    self.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice, stream,
                ),
                "cudaMemcpy2DToArrayAsync",
            )
        finally:
            # Unmapping on the same stream orders the copy before GL's next use of the texture.
            self._check(self.rt.cudaGraphicsUnmapResources(1, self._resource, stream), "cudaGraphicsUnmapResources")
        return self.texture

    def release(self) -> None:
        if self._resource is not None:
            self.rt.cudaGraphicsUnregisterResource(self._resource)
            self._resource = None
        if self.texture is not None:
            self.texture.release()
            self.texture = None
        self._key = None


class FrameUpload:
    """The one interface present_frame uses: picks CUDA-GL interop for CUDA tensors, host upload otherwise.

    If interop cannot start (cuda-python missing, registration refused, e.g. the GL context runs on
    another GPU) or fails later, it logs the reason once and uses host upload from then on.
    """

    def __init__(self, ctx: Any, *, allow_interop: bool = True) -> None:
        self.ctx = ctx
        self.host = HostUpload(ctx)
        self.interop: CudaGLUpload | None = None
        self.allow_interop = allow_interop
        self.fallback_reason: str | None = None
        """Why CUDA frames go through host memory (None while interop works or was never needed)."""
        self.path = "none"
        """Path used for the latest frame: 'host', 'cuda-gl' or 'none'."""

    def uploader_for(self, cuda: bool) -> HostUpload | CudaGLUpload:
        """The uploader for a CUDA (True) or CPU (False) frame, starting interop on first CUDA use."""
        if not cuda or not self.allow_interop or self.fallback_reason is not None:
            return self.host
        if self.interop is None:
            try:
                self.interop = CudaGLUpload(self.ctx)
            except InteropError as error:
                self.fall_back(str(error))
                return self.host
        return self.interop

    def fall_back(self, reason: str) -> None:
        self.fallback_reason = reason
        log.warning("CUDA-GL interop unavailable, using host upload: %s", reason)
        if self.interop is not None:
            try:
                self.interop.release()
            except Exception:  # the interop state is already broken; host upload must still work
                log.debug("releasing CUDA-GL interop failed", exc_info=True)
            self.interop = None

    def upload(self, rgba: Any) -> Any:
        """rgba: [H, W, 4] (or 1-3 channels on the host path) tensor/array -> texture to draw."""
        uploader = self.uploader_for(is_cuda_tensor(rgba))
        if isinstance(uploader, CudaGLUpload):
            try:
                texture = uploader.upload(rgba)
                self.path = uploader.name
                return texture
            except InteropError as error:
                self.fall_back(str(error))
                uploader = self.host
        texture = uploader.upload(rgba)
        self.path = uploader.name
        return texture

    def release(self) -> None:
        self.host.release()
        if self.interop is not None:
            self.interop.release()
            self.interop = None
