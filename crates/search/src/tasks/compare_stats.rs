//! The statistics of `search compare`: Welch's unequal-variance t test and Hedges' g, the
//! effect size with the small-sample correction (Hedges & Olkin 1985, eq. 5.10 approximated as
//! J = 1 − 3 / (4(n₁ + n₂) − 9)). The t distribution comes from `statrs`.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Welch's t test of `a` against `b`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Welch {
    pub t: f64,
    /// Welch–Satterthwaite degrees of freedom.
    pub df: f64,
    /// P(T ≥ t) under the null hypothesis of equal means: the one-sided p value of "a > b".
    pub p_greater: f64,
    /// The two-sided p value.
    pub p_two_sided: f64,
}

/// Mean and sample variance (n − 1).
fn mean_var(x: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, var)
}

/// Welch's test of `a` against `b`; `None` with fewer than two values on a side, or when both
/// sides have no spread (the test is undefined).
pub fn welch(a: &[f64], b: &[f64]) -> Option<Welch> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let ((ma, va), (mb, vb)) = (mean_var(a), mean_var(b));
    let (sa, sb) = (va / a.len() as f64, vb / b.len() as f64);
    let se = (sa + sb).sqrt();
    if se.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let t = (ma - mb) / se;
    let df = (sa + sb).powi(2) / (sa.powi(2) / (a.len() as f64 - 1.0) + sb.powi(2) / (b.len() as f64 - 1.0));
    let dist = StudentsT::new(0.0, 1.0, df).ok()?;
    let p_greater = 1.0 - dist.cdf(t);
    Some(Welch { t, df, p_greater, p_two_sided: 2.0 * (1.0 - dist.cdf(t.abs())) })
}

/// Hedges' g of `a` against `b` (the difference of means over the pooled standard deviation,
/// bias-corrected); `None` with fewer than two values on a side or no pooled spread.
pub fn hedges_g(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() < 2 || b.len() < 2 {
        return None;
    }
    let ((ma, va), (mb, vb)) = (mean_var(a), mean_var(b));
    let (na, nb) = (a.len() as f64, b.len() as f64);
    let pooled = (((na - 1.0) * va + (nb - 1.0) * vb) / (na + nb - 2.0)).sqrt();
    if pooled.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return None;
    }
    let correction = 1.0 - 3.0 / (4.0 * (na + nb) - 9.0);
    Some(correction * (ma - mb) / pooled)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against values computed by hand: a = [1, 2, 3, 4], b = [2, 4, 6, 8, 10]: means 2.5 and
    /// 6, variances 5/3 and 10, so t = −3.5 / sqrt(5/12 + 2) = −2.2514, df = 5.5208, and the
    /// two-sided p = I_{df/(df+t²)}(df/2, 1/2) = 0.0691 (the incomplete beta integrated
    /// numerically, independently of statrs).
    #[test]
    fn welch_matches_the_reference_values() {
        let w = welch(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0, 10.0]).unwrap();
        assert!((w.t + 2.2514).abs() < 1e-3, "{w:?}");
        assert!((w.df - 5.5208).abs() < 1e-3, "{w:?}");
        assert!((w.p_two_sided - 0.0691).abs() < 1e-3, "{w:?}");
        assert!((w.p_greater - (1.0 - w.p_two_sided / 2.0)).abs() < 1e-9, "t < 0: a > b is unlikely");
        assert!(welch(&[1.0], &[1.0, 2.0]).is_none() && welch(&[1.0, 1.0], &[2.0, 2.0]).is_none());
        // Means 2.5 and 6, variances 5/3 and 10: pooled sd = sqrt((5 + 40) / 7) = 2.5355;
        // d = −1.3804, J = 1 − 3 / 27 = 0.8889, g = −1.2270.
        let g = hedges_g(&[1.0, 2.0, 3.0, 4.0], &[2.0, 4.0, 6.0, 8.0, 10.0]).unwrap();
        assert!((g + 1.2270).abs() < 1e-3, "{g}");
    }
}
