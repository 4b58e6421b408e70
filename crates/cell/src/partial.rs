//! Partial channel connections (PC-DARTS, Y. Xu et al., ICLR 2020, §3.2), an optional
//! memory-saving mode of the search: only the first `C / K` channels of an edge's input go
//! through its mixed op; the other channels bypass it unweighted, and a channel shuffle with
//! K groups interleaves the two parts, so that the next edge samples other channels. PC-DARTS's
//! edge normalisation is not part of this mode: the architecture parameters, their decoding
//! and the deployed network are unchanged.

use tch::Tensor;

/// The first `C / k` channels of `xs` (`[N, C, H, W]`), the ones the mixed op processes.
pub fn processed(xs: &Tensor, k: i64) -> Tensor {
    let c = xs.size()[1];
    xs.narrow(1, 0, c / k)
}

/// An edge's output from `mixed`, its mixed op over the processed channels (`[..., C / k, H,
/// W]`, channels in dimension `dim`), and `xs`, the edge's whole input (`[N, C, H, W]`, whose
/// unprocessed channels are broadcast over the dimensions between N and `dim`): the two
/// concatenated in channel order and shuffled with `k` groups. Returns `mixed`'s shape with C
/// channels.
pub fn join(mixed: &Tensor, xs: &Tensor, k: i64, dim: i64) -> Tensor {
    let (n, c, h, w) = xs.size4().expect("edge input is [N, C, H, W]");
    let part = c / k;
    let mut bypass_shape = mixed.size();
    bypass_shape[dim as usize] = c - part;
    let mut view_shape: Vec<i64> = vec![n];
    view_shape.extend(std::iter::repeat_n(1, dim as usize - 1));
    view_shape.extend([c - part, h, w]);
    let bypass = xs.narrow(1, part, c - part).view(view_shape.as_slice()).expand(bypass_shape.as_slice(), false);
    let joined = Tensor::cat(&[mixed, &bypass], dim);
    // Shuffle: channel g * (C / k) + j goes to j * k + g.
    let mut grouped = joined.size();
    grouped.splice(dim as usize..dim as usize + 1, [k, part]);
    let shape = joined.size();
    joined.view(grouped.as_slice()).transpose(dim, dim + 1).reshape(shape.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn join_concatenates_and_shuffles_like_pc_darts() {
        // C = 4, k = 2: processed channels [0, 1] -> mixed values 10, 11; bypass channels 2, 3.
        let xs = Tensor::arange(4, (Kind::Float, Device::Cpu)).view([1, 4, 1, 1]);
        let mixed = processed(&xs, 2) + 10.0;
        let out = join(&mixed, &xs, 2, 1);
        assert_eq!(Vec::<f32>::try_from(out.flatten(0, -1)).unwrap(), [10.0, 2.0, 11.0, 3.0]);
        // The same with an edge dimension between N and the channels (the fused bundles).
        let mixed = Tensor::stack(&[&mixed, &(&mixed * 2.0)], 1);
        let out = join(&mixed, &xs, 2, 2);
        assert_eq!(out.size(), [1, 2, 4, 1, 1]);
        assert_eq!(Vec::<f32>::try_from(out.flatten(0, -1)).unwrap(), [10.0, 2.0, 11.0, 3.0, 20.0, 2.0, 22.0, 3.0]);
    }
}
