"""FID against closed forms, sampled Gaussians and singular covariances."""

import numpy as np
import pytest

from trainer import metrics
from trainer.metrics import fid


def _random_covariance(rng: np.random.Generator, dim: int) -> np.ndarray:
  factor = rng.normal(size=(dim, dim))
  return factor @ factor.T + 0.1 * np.eye(dim)


def _diagonal_closed_form(mean1, variances1, mean2, variances2) -> float:
  """||m1 - m2||^2 + sum (sqrt(a) - sqrt(b))^2 for commuting covariances."""
  return float(np.sum((mean1 - mean2)**2)
               + np.sum((np.sqrt(variances1) - np.sqrt(variances2))**2))


def _sample_fid(real: np.ndarray, fake: np.ndarray) -> float:
  """FID through the public metric, from embeddings alone."""
  def features(embeddings):
    return metrics.Features(embeddings=embeddings,
                            probabilities=np.ones((len(embeddings), 1)))
  return metrics.compute(["fid"], features(real), features(fake),
                         metrics.Settings())["fid"]


def test_diagonal_covariances_give_the_closed_form():
  rng = np.random.default_rng(0)
  mean1, mean2 = rng.normal(size=8), rng.normal(size=8)
  # Zero variances too: a singular covariance still has an exact answer.
  variances1 = np.concatenate([rng.uniform(0.1, 4, size=6), [0.0, 0.0]])
  variances2 = np.concatenate([rng.uniform(0.1, 4, size=6), [1.0, 0.0]])
  assert fid.frechet_distance(
      mean1, np.diag(variances1), mean2, np.diag(variances2)) == pytest.approx(
          _diagonal_closed_form(mean1, variances1, mean2, variances2),
          rel=1e-10)


def test_commuting_full_covariances_give_the_closed_form():
  # C = Q diag(v) Q^T with one rotation Q: full matrices, known answer.
  rng = np.random.default_rng(1)
  rotation, _ = np.linalg.qr(rng.normal(size=(10, 10)))
  variances1, variances2 = rng.uniform(0.1, 5, size=(2, 10))
  mean1, mean2 = rng.normal(size=(2, 10))
  cov1 = rotation @ np.diag(variances1) @ rotation.T
  cov2 = rotation @ np.diag(variances2) @ rotation.T
  assert fid.frechet_distance(mean1, cov1, mean2, cov2) == pytest.approx(
      _diagonal_closed_form(mean1, variances1, mean2, variances2), rel=1e-9)


def test_general_covariances_match_eigenvalues_of_their_product():
  # Independently: tr(sqrt(C1 C2)) = sum of sqrt of eigenvalues of C1 C2.
  rng = np.random.default_rng(2)
  cov1, cov2 = _random_covariance(rng, 12), _random_covariance(rng, 12)
  mean1, mean2 = rng.normal(size=(2, 12))
  eigenvalues = np.linalg.eigvals(cov1 @ cov2)
  expected = (np.sum((mean1 - mean2)**2) + np.trace(cov1) + np.trace(cov2)
              - 2 * np.sum(np.sqrt(eigenvalues.real)))
  assert fid.frechet_distance(mean1, cov1, mean2, cov2) == pytest.approx(
      expected, rel=1e-9)


def test_is_symmetric():
  rng = np.random.default_rng(3)
  cov1, cov2 = _random_covariance(rng, 12), _random_covariance(rng, 12)
  mean1, mean2 = rng.normal(size=(2, 12))
  assert fid.frechet_distance(mean1, cov1, mean2, cov2) == pytest.approx(
      fid.frechet_distance(mean2, cov2, mean1, cov1), rel=1e-9)


def test_samples_of_known_gaussians_approach_the_closed_form():
  rng = np.random.default_rng(4)
  cov1, cov2 = _random_covariance(rng, 5), _random_covariance(rng, 5)
  mean1, mean2 = rng.normal(size=(2, 5))
  expected = fid.frechet_distance(mean1, cov1, mean2, cov2)
  real = rng.multivariate_normal(mean1, cov1, size=20_000)
  fake = rng.multivariate_normal(mean2, cov2, size=20_000)
  # Estimation error shrinks as 1/sqrt(N); 2% is many standard errors here.
  assert _sample_fid(real, fake) == pytest.approx(expected, rel=0.02)


def test_sample_covariances_are_unbiased():
  # Variances with ddof=1: {-1, 1} -> 2 and {-2, 2} -> 8, so FID is
  # (sqrt(2) - sqrt(8))^2 = 2 (with ddof=0 it would be (1 - 2)^2 = 1).
  real = np.array([[-1.0], [1.0]])
  assert _sample_fid(real, 2 * real) == pytest.approx(2, rel=1e-12)


@pytest.mark.parametrize("num, dim", [(500, 32), (10, 64)])
def test_a_set_against_itself_is_zero(num, dim):
  # (10, 64): fewer samples than dimensions, a rank-deficient covariance.
  rng = np.random.default_rng(5)
  embeddings = rng.normal(size=(num, dim)) @ rng.normal(size=(dim, dim))
  trace = np.trace(np.cov(embeddings, rowvar=False))
  assert _sample_fid(embeddings, embeddings) <= 1e-9 * trace


def test_fewer_samples_than_dimensions_give_a_finite_real_value():
  rng = np.random.default_rng(6)
  value = _sample_fid(rng.normal(size=(10, 64)),
                      rng.normal(size=(12, 64)) + 1)
  assert isinstance(value, float)
  assert np.isfinite(value) and value >= 0
  # Each of 64 dimensions contributes its squared mean shift of 1, at least.
  assert value > 64


def test_duplicated_columns_double_the_distance():
  # [x, x] = sqrt(2) * (an isometry of x): FID scales by 2 despite the
  # singular covariances.
  rng = np.random.default_rng(7)
  real = rng.normal(size=(300, 8))
  fake = 2 * rng.normal(size=(300, 8)) + 0.5
  doubled = _sample_fid(np.hstack([real, real]), np.hstack([fake, fake]))
  assert np.isfinite(doubled)
  assert doubled == pytest.approx(2 * _sample_fid(real, fake), rel=1e-6)
