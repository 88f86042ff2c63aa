import cv2
import numpy as np
import pytest
import tensorflow as tf

from clipswap.losses.augment import apply_augment_params
from clipswap.losses.tf_only import clip_augment, sample_augment_params


def _images(batch=2, size=24, seed=0):
    return tf.constant(np.random.default_rng(seed).uniform(-1, 1, size=(batch, size, size + 4, 3)), tf.float32)


def test_shape_range_and_seeding():
    images = _images()
    out = clip_augment(images, n_aug=3, seed=5)
    assert out.shape == (2, 3, 24, 28, 3)
    assert float(tf.reduce_min(out)) >= -1.0 and float(tf.reduce_max(out)) <= 1.0
    assert np.array_equal(out.numpy(), clip_augment(images, n_aug=3, seed=5).numpy())
    assert not np.allclose(out.numpy(), clip_augment(images, n_aug=3, seed=6).numpy())
    # augmentations of one image differ from each other
    assert not np.allclose(out[0, 0].numpy(), out[0, 1].numpy())
    resized = tf.function(lambda x: clip_augment(x, n_aug=3, seed=tf.constant([5, 0]), output_size=(16, 20)))(images)
    assert resized.shape == (2, 3, 16, 20, 3)


def test_no_crop_no_distortion_is_identity():
    images = _images()
    out = clip_augment(images, n_aug=2, distortion=0.0, crop_fraction=1.0)
    assert np.allclose(out.numpy(), np.repeat(images.numpy()[:, None], 2, axis=1), atol=1e-5)


def test_matches_numpy_warp_built_with_opencv_homography():
    images = _images(batch=1, size=20)
    h, w = 20, 24
    params = sample_augment_params(1, h, w, n_aug=2, distortion=0.5, crop_fraction=0.75, seed=11)
    out = apply_augment_params(images, params, output_size=(18, 18), fill_value=-1.0).numpy()
    image = images.numpy()[0].astype(np.float64)
    square = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], np.float32)
    for k in range(2):
        x0, y0, cw, ch = params["crop_box"].numpy()[0, k]
        # maps the warped quad back onto the unit square of the crop (independent of our DLT solver)
        matrix = cv2.getPerspectiveTransform(params["corners"].numpy()[0, k].astype(np.float32), square)
        compared = 0
        for v in range(18):
            for u in range(18):
                p = np.array([((u + 0.5) * cw / 18 - 0.5) / (cw - 1), ((v + 0.5) * ch / 18 - 0.5) / (ch - 1), 1.0])
                q = matrix @ p
                qx, qy = q[0] / q[2], q[1] / q[2]
                margin = min(qx, qy, 1 - qx, 1 - qy)
                if abs(margin) < 1e-3:
                    continue  # on the quad's edge: inside/outside is a rounding decision
                if margin < 0:
                    expected = np.full(3, -1.0)
                else:
                    x, y = x0 + qx * (cw - 1), y0 + qy * (ch - 1)
                    xa, ya = int(np.floor(x)), int(np.floor(y))
                    xb, yb = min(xa + 1, w - 1), min(ya + 1, h - 1)
                    fx, fy = x - xa, y - ya
                    expected = (image[ya, xa] * (1 - fx) + image[ya, xb] * fx) * (1 - fy) + (
                        image[yb, xa] * (1 - fx) + image[yb, xb] * fx
                    ) * fy
                assert np.allclose(out[0, k, v, u], expected, atol=2e-4), (k, v, u)
                compared += 1
        assert compared > 300


def test_gradient_is_exact_adjoint():
    # With fill 0 the augmentation is linear in the images, A x, so <A^T w, x> must equal <w, A x>.
    images = _images(seed=3)
    with tf.GradientTape() as tape:
        tape.watch(images)
        out = clip_augment(images, n_aug=2, seed=9, fill_value=0.0)
        weights = tf.constant(np.random.default_rng(4).normal(size=out.shape), tf.float32)
        dot = tf.reduce_sum(weights * out)
    gradient = tape.gradient(dot, images)
    assert np.all(np.isfinite(gradient.numpy())) and float(tf.reduce_max(tf.abs(gradient))) > 0
    assert float(tf.reduce_sum(gradient * images)) == pytest.approx(float(dot), rel=1e-4, abs=1e-3)


def test_argument_errors():
    with pytest.raises(ValueError, match="distortion"):
        clip_augment(_images(), distortion=1.0)
    with pytest.raises(ValueError, match="crop_fraction"):
        clip_augment(_images(), crop_fraction=0.0)
    with pytest.raises(ValueError, match="seed"):
        clip_augment(_images(), seed=[1, 2, 3])
    with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
        clip_augment(tf.zeros([8, 8, 3]))


def test_same_draws_under_xla():
    # The trainer may compile with XLA; a seed must mean the same augmentations there.
    eager = sample_augment_params(2, 16, 16, 3, seed=[4, 2])
    compiled = tf.function(lambda: sample_augment_params(2, 16, 16, 3, seed=[4, 2]), jit_compile=True)()
    for key in ("crop_box", "corners"):
        assert np.allclose(eager[key].numpy(), compiled[key].numpy(), atol=1e-6)
