import numpy as np
import pytest

from clipswap.face.similarity import cosine_matrix, cosine_similarity, unit_rows


def test_cosine_values():
    assert cosine_similarity([1.0, 0.0], [3.0, 0.0]) == pytest.approx(1.0)
    assert cosine_similarity([1.0, 0.0], [0.0, -2.0]) == pytest.approx(0.0)
    assert cosine_similarity([1.0, 1.0], [-1.0, -1.0]) == pytest.approx(-1.0)
    rows = cosine_similarity(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([2.0, 0.0]))
    np.testing.assert_allclose(rows, [1.0, np.sqrt(0.5)])


def test_matrix_matches_pairwise():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(4, 5)), rng.normal(size=(3, 5))
    expected = [[float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)) for y in b] for x in a]
    np.testing.assert_allclose(cosine_matrix(a, b), expected, atol=1e-12)
    np.testing.assert_allclose(np.diag(cosine_matrix(a)), 1.0)


def test_zero_vector_is_refused():
    with pytest.raises(ValueError, match="zero or non-finite"):
        unit_rows(np.zeros((2, 3)))


def test_transform_points_matches_cv2():
    import cv2

    from clipswap.face.align import transform_points

    matrix = np.array([[0.8, -0.3, 5.0], [0.3, 0.8, -2.0]])
    points = np.array([[10.0, 20.0], [0.0, 0.0], [-4.0, 7.5]])
    expected = cv2.transform(points[None].astype(np.float64), matrix)[0]
    np.testing.assert_allclose(transform_points(matrix, points), expected, atol=1e-12)
