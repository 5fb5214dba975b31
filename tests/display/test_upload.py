"""Frame upload: host path for arrays and CPU tensors, interop selection and its fallback, CUDA-GL on a GPU."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from engine.display.headless import create_egl_context, release_egl_context
from engine.display.upload import FrameUpload, HostUpload, is_cuda_tensor, to_host_array


@pytest.fixture(scope="module")
def ctx():
    context = create_egl_context()
    yield context
    release_egl_context(context)


def texture_pixels(texture, dtype) -> np.ndarray:
    width, height = texture.size
    return np.frombuffer(texture.read(), dtype).reshape(height, width, texture.components)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_host_upload_round_trips(ctx, kind, dtype):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (24, 40, 4), dtype=np.uint8)
    if dtype == "float32":
        image = image.astype(np.float32) / 255.0
    frame = torch.from_numpy(image) if kind == "torch" else image
    upload = HostUpload(ctx)
    texture = upload.upload(frame)
    assert texture.size == (40, 24) and texture.components == 4
    np.testing.assert_array_equal(texture_pixels(texture, image.dtype), image)
    upload.release()


def test_host_upload_reuses_the_texture_until_the_size_changes(ctx):
    upload = HostUpload(ctx)
    first = upload.upload(np.zeros((8, 8, 4), np.uint8))
    assert upload.upload(np.full((8, 8, 4), 7, np.uint8)) is first
    assert texture_pixels(first, np.uint8).min() == 7  # rewritten in place
    resized = upload.upload(np.zeros((8, 16, 4), np.uint8))
    assert resized is not first and resized.size == (16, 8)
    upload.release()


def test_host_upload_accepts_strided_tensors(ctx):
    base = torch.arange(8 * 8 * 4, dtype=torch.uint8).reshape(8, 8, 4)
    flipped = base.flip(0)  # not contiguous
    texture = HostUpload(ctx).upload(flipped)
    np.testing.assert_array_equal(texture_pixels(texture, np.uint8), flipped.numpy())


@pytest.mark.parametrize(
    ("array", "message"),
    [(np.zeros((8, 8), np.uint8), r"\[H, W, 4\]"), (np.zeros((4, 4, 4), np.int32), "uint8, float16 or float32")],
)
def test_bad_frames_are_refused_with_the_fix(array, message):
    with pytest.raises(ValueError, match=message):
        to_host_array(array)


def test_cpu_frames_take_the_host_path(ctx):
    upload = FrameUpload(ctx)
    assert not is_cuda_tensor(torch.zeros(2, 2, 4)) and not is_cuda_tensor(np.zeros((2, 2, 4)))
    upload.upload(torch.zeros(4, 4, 4, dtype=torch.uint8))
    assert upload.path == "host"
    assert upload.interop is None and upload.fallback_reason is None  # interop never started for CPU frames


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a CUDA machine interop may start for real (gpu tests)")
def test_cuda_frames_fall_back_to_host_with_a_reason(ctx, caplog):
    upload = FrameUpload(ctx)
    chosen = upload.uploader_for(cuda=True)
    assert isinstance(chosen, HostUpload)
    assert upload.fallback_reason
    if importlib.util.find_spec("cuda") is None:
        assert "pip install 'syncanim[gpu]'" in upload.fallback_reason  # import error path
    else:
        assert "cudaGraphicsGLRegisterImage" in upload.fallback_reason or "CUDA" in upload.fallback_reason
    assert "interop unavailable" in caplog.text
    # The decision sticks: no retry per frame, CPU frames unaffected.
    assert upload.uploader_for(cuda=True) is upload.host
    assert upload.uploader_for(cuda=False) is upload.host


def test_interop_can_be_disabled(ctx):
    upload = FrameUpload(ctx, allow_interop=False)
    assert upload.uploader_for(cuda=True) is upload.host and upload.fallback_reason is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_cuda_gl_interop_copies_device_frames(ctx, dtype):
    pytest.importorskip("cuda.bindings", reason="cuda-python is not installed (pip install 'syncanim[gpu]')")
    frame = torch.randint(0, 256, (36, 52, 4), dtype=torch.uint8, device="cuda")
    if dtype == torch.float32:
        frame = frame.float() / 255.0
    upload = FrameUpload(ctx)
    texture = upload.upload(frame)
    assert upload.path == "cuda-gl", upload.fallback_reason
    torch.cuda.synchronize()
    expected = frame.cpu().numpy()
    np.testing.assert_array_equal(texture_pixels(texture, expected.dtype), expected)
    again = upload.upload(frame.flip(0))  # same size: same registered texture, new content
    assert again is texture
    np.testing.assert_array_equal(texture_pixels(texture, expected.dtype), expected[::-1])
    upload.release()
