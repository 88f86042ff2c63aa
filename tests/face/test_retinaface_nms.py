"""RetinaFace's NMS in NumPy keeps what tf.image.non_max_suppression (the published graph's op) keeps, in its order."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from clipswap.face.retinaface import non_max_suppression


def _tensorflow_nms(boxes, scores, iou_threshold, score_threshold):
    keep = tf.image.non_max_suppression(boxes, scores, max_output_size=len(boxes), iou_threshold=iou_threshold,
                                        score_threshold=score_threshold)
    return keep.numpy().astype(np.int64)


@pytest.mark.parametrize("trial", range(24))
def test_numpy_nms_keeps_tensorflows_boxes_in_its_order(trial):
    rng = np.random.default_rng(trial)
    count = int(rng.integers(1, 400))
    corner = rng.uniform(0, 1, (count, 2))
    boxes = np.concatenate([corner, corner + rng.uniform(0.01, 0.4, (count, 2))], axis=1).astype(np.float32)
    scores = rng.uniform(size=count).astype(np.float32)
    if trial % 3 == 0:
        boxes = np.round(boxes * 20) / 20  # equal boxes: IoU exactly at the threshold
    if trial % 4 == 0:
        scores = np.round(scores * 5) / 5  # equal scores: TensorFlow visits the lower index first
    if trial % 6 == 1:
        boxes[::7] = boxes[::7, [2, 3, 0, 1]]  # corners given the other way round
        boxes[1::9, 2] = boxes[1::9, 0]  # zero-area boxes overlap nothing
    iou_threshold = [0.3, 0.4, 0.5, 0.0, 1.0, 0.35][trial % 6]
    score_threshold = [0.0, 0.2, 0.5, 0.02][trial % 4]
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, iou_threshold, score_threshold),
                                  _tensorflow_nms(boxes, scores, iou_threshold, score_threshold))


def test_no_boxes_and_no_box_above_the_score_threshold():
    assert non_max_suppression(np.zeros((0, 4)), np.zeros((0,)), 0.4, 0.5).dtype == np.int64
    assert non_max_suppression(np.array([[0, 0, 1, 1]]), np.array([0.5]), 0.4, 0.5).shape == (0,)
