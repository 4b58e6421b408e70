//! The cell-level search space on the CPU with small C and crops: ops, mixed op, search cell,
//! α and the fixed cell (paper §3.1, §4.3; facts §2, §6).

mod common;

use cell::edges::{edge_index, num_edges};
use cell::{
    Alpha, CellEdge, FixedCellConfig, Genotype, MixedOp, OpConfig, OpStyle, Primitive, ReferenceCell, ReferenceMixedOp,
    SearchCellConfig,
};
use common::{has_useful_gradient, max_abs_diff, trainable_numel};
use tch::nn::ModuleT;
use tch::{nn, Device, Kind, Reduction, Tensor};

const C: i64 = 4;

fn input(n: i64, c: i64, h: i64, w: i64) -> Tensor {
    Tensor::randn([n, c, h, w], (Kind::Float, Device::Cpu))
}

#[test]
fn every_op_keeps_the_shape_and_none_builds_nothing() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    for style in [OpStyle::Search, OpStyle::Deployed] {
        for (h, w) in [(9, 9), (8, 12)] {
            let x = input(2, C, h, w);
            for p in Primitive::ALL {
                let op = OpConfig { primitive: p, channels: C, stride: 1, style }
                    .build(&(vs.root() / format!("{style:?}{h}") / p.name()));
                match p {
                    Primitive::None => assert!(op.is_none(), "`none` must not build a module"),
                    _ => {
                        let y = op.unwrap().forward_t(&x, true);
                        assert_eq!(y.size(), [2, C, h, w], "{p} ({style:?}) at {h}x{w}");
                    }
                }
            }
        }
    }
}

#[test]
fn deployed_ops_at_stride_two_halve_the_resolution_the_deeplab_way() {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    // 2^k * n + 1 sizes map to (n - 1) / 2 + 1; even sizes to n / 2.
    for (h, expected) in [(17, 9), (16, 8)] {
        let x = input(1, C, h, h);
        for p in Primitive::ALL.into_iter().filter(|p| *p != Primitive::None) {
            let op = OpConfig { primitive: p, channels: C, stride: 2, style: OpStyle::Deployed }
                .build(&(vs.root() / format!("s{h}") / p.name()))
                .unwrap();
            assert_eq!(op.forward_t(&x, true).size(), [1, C, expected, expected], "{p} at {h}");
        }
    }
}

#[test]
fn op_parameter_counts_follow_the_two_definitions() {
    let count = |p: Primitive, style| {
        let vs = nn::VarStore::new(Device::Cpu);
        OpConfig { primitive: p, channels: C, stride: 1, style }.build(&vs.root());
        trainable_numel(&vs)
    };
    let c = C;
    // Search: BN without affine parameters; atrous = depthwise + pointwise.
    assert_eq!(count(Primitive::SepConv3x3, OpStyle::Search), 2 * (9 * c + c * c));
    assert_eq!(count(Primitive::DilConv5x5, OpStyle::Search), 25 * c + c * c);
    assert_eq!(count(Primitive::MaxPool3x3, OpStyle::Search), 0);
    // Deployed: BN scale and offset; atrous = full convolution.
    assert_eq!(count(Primitive::SepConv5x5, OpStyle::Deployed), 2 * (25 * c + c * c + 2 * c));
    assert_eq!(count(Primitive::DilConv3x3, OpStyle::Deployed), 9 * c * c + 2 * c);
    assert_eq!(count(Primitive::AvgPool3x3, OpStyle::Deployed), 0);
    assert_eq!(count(Primitive::SkipConnect, OpStyle::Deployed), 0);
}

/// The mixed op (built from the op registry) computes the softmax(α)-weighted sum of its ops:
/// the per-edge reference's ops, with the same weights, summed by hand.
#[test]
fn mixed_op_is_the_weighted_sum_of_its_ops_and_ignores_none() {
    let x = input(2, C, 7, 7);
    let vs_mixed = nn::VarStore::new(Device::Cpu);
    let mixed = MixedOp::new(&(vs_mixed.root() / "edge"), C, 1, 1);
    let vs_reference = nn::VarStore::new(Device::Cpu);
    let reference = ReferenceMixedOp::new(&(vs_reference.root() / "edge"), C, 1);
    assert_eq!(trainable_numel(&vs_mixed), trainable_numel(&vs_reference));
    cell::reference::ops_into(&[&reference], &mixed);
    let ops: Vec<_> = Primitive::ALL.iter().skip(1).map(|&p| reference.op(p)).collect();
    assert_eq!(ops.len(), 7);

    let weights = Tensor::from_slice(&[0.3f32, 0.05, 0.1, 0.15, 0.1, 0.05, 0.2, 0.05]);
    let by_hand = ops
        .iter()
        .map(|op| op.forward_t(&x, false) * f64::try_from(weights.get(op.primitive().index() as i64)).unwrap())
        .reduce(|a, b| a + b)
        .unwrap();
    let mixed_out = mixed.forward_t(&x, &weights, false);
    assert!(max_abs_diff(&mixed_out, &by_hand) < 1e-5, "mixed op differs from the weighted sum");

    // `none` contributes nothing: changing its weight alone leaves the output as it is.
    let other_none = Tensor::from_slice(&[0.9f32, 0.05, 0.1, 0.15, 0.1, 0.05, 0.2, 0.05]);
    assert!(max_abs_diff(&mixed.forward_t(&x, &other_none, false), &mixed_out) < 1e-6);
    // ...while any other weight matters.
    let other_skip = Tensor::from_slice(&[0.3f32, 0.05, 0.1, 0.45, 0.1, 0.05, 0.2, 0.05]);
    assert!(max_abs_diff(&mixed.forward_t(&x, &other_skip, false), &mixed_out) > 1e-3);
}

fn search_cell_case(blocks: usize, with_prev_prev: bool, size: i64) {
    tch::manual_seed(1);
    let weights = nn::VarStore::new(Device::Cpu);
    let arch = nn::VarStore::new(Device::Cpu);
    let alpha = Alpha::new(&arch.root(), blocks);
    assert_eq!(alpha.logits().size(), [num_edges(blocks) as i64, 8]);
    let config = SearchCellConfig {
        blocks,
        channels: C,
        prev_prev_channels: with_prev_prev.then_some(6),
        prev_channels: 10,
        partial_channels: 1,
    };
    let cell = config.build(&(weights.root() / "cell"));
    let prev_prev = input(2, 6, size, size);
    let prev = input(2, 10, size, size);
    let out = cell.forward_t(with_prev_prev.then_some(&prev_prev), &prev, &alpha.weights(), true);
    assert_eq!(out.size(), [2, blocks as i64 * C, size, size]);

    let classifier = nn::conv2d(weights.root() / "head", blocks as i64 * C, 3, 1, Default::default());
    let labels = Tensor::randint(3, [2, size, size], (Kind::Int64, Device::Cpu));
    let loss = out.apply(&classifier).cross_entropy_loss::<Tensor>(&labels, None, Reduction::Mean, 255, 0.0);
    assert!(f64::try_from(&loss).unwrap().is_finite());
    loss.backward();

    // The two stores are disjoint: α only in the architecture store.
    assert_eq!(arch.trainable_variables().len(), 1);
    assert!(weights.variables().keys().all(|k| !k.contains("alpha")));
    for (name, t) in weights.variables() {
        if t.requires_grad() {
            assert!(has_useful_gradient(&t), "weight {name} got no finite non-zero gradient");
        }
    }
    let alpha_grad = alpha.logits().grad();
    assert!(bool::try_from(alpha_grad.isfinite().all()).unwrap());
    for block in 0..blocks {
        for input in 0..block + 2 {
            let row_norm = f64::try_from(alpha_grad.get(edge_index(block, input) as i64).norm()).unwrap();
            if input == 0 && !with_prev_prev {
                assert_eq!(row_norm, 0.0, "edge from the absent H^(l-2) into block {block} must drop out");
            } else {
                assert!(row_norm > 0.0, "α row of block {block} input {input} got no gradient");
            }
        }
    }
}

#[test]
fn search_cell_shapes_and_gradients_five_blocks() {
    search_cell_case(5, true, 8);
}

#[test]
fn search_cell_without_prev_prev_drops_its_edges() {
    search_cell_case(3, false, 9);
    // Fewer weights: no preprocessing of H^(l-2) and no mixed ops on its edges.
    let count = |pp| {
        let vs = nn::VarStore::new(Device::Cpu);
        SearchCellConfig { blocks: 3, channels: C, prev_prev_channels: pp, prev_channels: C, partial_channels: 1 }
            .build(&vs.root());
        vs.variables().len()
    };
    assert!(count(None) < count(Some(C)));
}

#[test]
fn search_cell_with_one_block() {
    search_cell_case(1, true, 5);
}

fn paper_cell(
    channels: i64,
    prev_prev_channels: i64,
    prev_channels: i64,
    stride: i64,
) -> (nn::VarStore, cell::FixedCell) {
    let vs = nn::VarStore::new(Device::Cpu);
    let cell = FixedCellConfig { genotype: Genotype::paper(), channels, prev_prev_channels, prev_channels, stride }
        .build(&(vs.root() / "cell"));
    (vs, cell)
}

#[test]
fn fixed_cell_of_the_paper_genotype_has_the_expected_structure() {
    use Primitive::*;
    let (c, cp, cpp) = (8i64, 40i64, 20i64);
    let (vs, cell) = paper_cell(c, cpp, cp, 1);
    assert_eq!(
        cell.edges(),
        [
            (0, 0, DilConv5x5),
            (0, 1, SepConv3x3),
            (1, 0, SepConv3x3),
            (1, 1, DilConv3x3),
            (2, 0, SepConv3x3),
            (2, 3, SepConv3x3),
            (3, 2, SepConv5x5),
            (3, 4, SepConv5x5),
            (4, 3, SepConv5x5),
            (4, 5, DilConv5x5),
        ]
    );
    assert!(cell.preprocesses_prev_prev());
    // Parameters by hand, deployed definitions (BN scale + offset = 2C per BN).
    let bn = 2 * c;
    let sep = |k: i64| 2 * (k * k * c + c * c + bn);
    let atrous = |k: i64| k * k * c * c + bn;
    let preprocess = (cp * c + bn) + (cpp * c + bn);
    let ops = 2 * atrous(5) + atrous(3) + 4 * sep(3) + 3 * sep(5);
    assert_eq!(trainable_numel(&vs), preprocess + ops);

    // H^(l-2) with C channels is used as it is, without its own 1x1 conv.
    let (vs_same, same) = paper_cell(c, c, cp, 1);
    assert!(!same.preprocesses_prev_prev());
    assert_eq!(trainable_numel(&vs_same), preprocess - (cpp * c + bn) + ops);
}

#[test]
fn fixed_cell_forward_backward_at_both_strides() {
    tch::manual_seed(3);
    for (stride, h, out_h) in [(1, 9, 9), (2, 9, 5), (2, 17, 9)] {
        let (vs, cell) = paper_cell(4, 6, 10, stride);
        // H^(l-2) at a finer level than H^(l-1) gets resized to H^(l-1)'s size.
        let prev_prev = input(2, 6, 2 * h - 1, 2 * h - 1);
        let prev = input(2, 10, h, h);
        let out = cell.forward_t(&prev_prev, &prev, true);
        assert_eq!(out.size(), [2, 5 * 4, out_h, out_h], "stride {stride} at {h}");
        out.square().mean(Kind::Float).backward();
        for (name, t) in vs.trainable_variables().iter().enumerate() {
            assert!(has_useful_gradient(t), "fixed cell parameter #{name} got no gradient at stride {stride}");
        }
    }
}

#[test]
fn fixed_cell_applies_each_op_to_its_own_input_whatever_the_order() {
    // Parameter-free ops, so that only the wiring differs between the builds.
    let e = |input, op| CellEdge { input, op };
    let build = |blocks: Vec<[CellEdge; 2]>| {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = FixedCellConfig {
            genotype: Genotype::new(blocks).unwrap(),
            channels: C,
            prev_prev_channels: 6,
            prev_channels: 6,
            stride: 1,
        };
        let cell = config.build(&vs.root());
        (vs, cell)
    };
    use Primitive::*;
    let (a, listed) = build(vec![[e(0, MaxPool3x3), e(1, SkipConnect)], [e(2, AvgPool3x3), e(0, SkipConnect)]]);
    let (mut b, swapped) = build(vec![[e(1, SkipConnect), e(0, MaxPool3x3)], [e(0, SkipConnect), e(2, AvgPool3x3)]]);
    let (mut c, rewired) = build(vec![[e(1, MaxPool3x3), e(0, SkipConnect)], [e(2, AvgPool3x3), e(0, SkipConnect)]]);
    // Only the preprocessing has weights, under the same names in all three: share them.
    b.copy(&a).unwrap();
    c.copy(&a).unwrap();
    tch::manual_seed(6);
    let prev_prev = input(1, 6, 7, 7);
    let prev = input(1, 6, 7, 7);
    let out = listed.forward_t(&prev_prev, &prev, false);
    assert!(max_abs_diff(&out, &swapped.forward_t(&prev_prev, &prev, false)) < 1e-6);
    assert!(max_abs_diff(&out, &rewired.forward_t(&prev_prev, &prev, false)) > 1e-3);
}

/// A cell's forward over transitions: (H^(l-2), the H^(l-1) of each transition, softmax(α)).
type CellForward<'a> = dyn Fn(Option<&Tensor>, &[Tensor], &Tensor) -> Tensor + 'a;

/// The search cell (one [`MixedOp`] per state for all the edges leaving it) computes what the
/// per-edge reference (one mixed op per edge, one transition at a time) computes, with the
/// reference's weights copied in: outputs, input gradients and α's gradient, for one
/// transition and for three batched.
#[test]
fn search_cell_equals_the_per_edge_reference() {
    // 9x9: the 5x5-sized first-stage depthwise convolutions merged; 33x33: separate; K = 2:
    // partial channel connections, half of the channels through the ops.
    for (with_prev_prev, transitions, size, partial_channels) in
        [(true, 1, 9, 1), (true, 3, 9, 1), (false, 2, 9, 1), (true, 2, 33, 1), (true, 3, 9, 2)]
    {
        assert_eq!(size * size <= cell::mixed::MERGED_DEPTHWISE_MAX_PIXELS, size == 9);
        let arch = nn::VarStore::new(Device::Cpu);
        let alpha = Alpha::new(&arch.root(), 4);
        let (reference_store, store) = (nn::VarStore::new(Device::Cpu), nn::VarStore::new(Device::Cpu));
        let config = SearchCellConfig {
            blocks: 4,
            channels: C,
            prev_prev_channels: with_prev_prev.then_some(6),
            prev_channels: 10,
            partial_channels,
        };
        let reference = ReferenceCell::new(&config, &reference_store.root());
        let cell = config.build(&store.root());
        reference.copy_into(&cell);
        let prev_prev = input(2, 6, size, size);
        let prevs: Vec<Tensor> = (0..transitions).map(|_| input(2, 10, size, size).set_requires_grad(true)).collect();
        let run = |forward: &CellForward| {
            let out = forward(with_prev_prev.then_some(&prev_prev), &prevs, &alpha.weights());
            let numel = out.numel() as i64;
            let weights = (Tensor::arange(numel, (Kind::Float, Device::Cpu)) * 0.37).sin().view(out.size().as_slice());
            for p in &prevs {
                let mut g = p.grad();
                if g.defined() {
                    let _ = g.zero_();
                }
            }
            let mut a = alpha.logits().grad();
            if a.defined() {
                let _ = a.zero_();
            }
            (&out * &weights).sum(Kind::Float).backward();
            (out.detach(), prevs[0].grad().copy(), alpha.logits().grad().copy())
        };
        let (a_out, a_grad, a_alpha) = run(&|pp, prevs, a| reference.forward_transitions(pp, prevs, a, true));
        let (b_out, b_grad, b_alpha) = run(&|pp, prevs, a| cell.forward_transitions(pp, prevs, a, true));
        assert_eq!(a_out.size(), b_out.size());
        for (name, a, b) in
            [("output", &a_out, &b_out), ("input gradient", &a_grad, &b_grad), ("α gradient", &a_alpha, &b_alpha)]
        {
            let scale = f64::try_from(a.abs().max()).unwrap().max(1e-6);
            let diff = max_abs_diff(a, b);
            assert!(
                diff <= 1e-4 * scale,
                "{name} differs by {diff} (scale {scale}), prev_prev {with_prev_prev}, T = {transitions}, {size}x{size}, K = {partial_channels}"
            );
        }
    }
}

/// Grouped batch norm (T sub-batches folded into channels, one fused call) equals T separate
/// batch norms called in order: outputs, input gradients, affine gradients and the running
/// statistics after the T momentum updates.
#[test]
fn grouped_batch_norm_equals_separate_norms_in_order() {
    for (groups, affine) in [(2, false), (3, true), (4, false)] {
        let grouped_store = nn::VarStore::new(Device::Cpu);
        let separate_store = nn::VarStore::new(Device::Cpu);
        let grouped = cell::ops::batch_norm(grouped_store.root() / "bn", C, affine);
        let separate = cell::ops::batch_norm(separate_store.root() / "bn", C, affine);
        // Non-trivial starting statistics and affine parameters, the same in both.
        tch::no_grad(|| {
            for bn in [&grouped, &separate] {
                bn.running_mean.shallow_clone().copy_(&Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.0]));
                bn.running_var.shallow_clone().copy_(&Tensor::from_slice(&[1.5f32, 0.25, 3.0, 1.0]));
                if let (Some(w), Some(b)) = (&bn.ws, &bn.bs) {
                    w.shallow_clone().copy_(&Tensor::from_slice(&[1.0f32, 2.0, -0.5, 0.3]));
                    b.shallow_clone().copy_(&Tensor::from_slice(&[0.1f32, 0.0, -0.2, 1.0]));
                }
            }
        });
        let xs = (input(groups * 2, C, 5, 7) * 3.0 + 1.0).set_requires_grad(true);
        let probe = (Tensor::arange(xs.numel() as i64, (Kind::Float, Device::Cpu)) * 0.11).cos().view_as(&xs);
        let a = cell::ops::grouped_batch_norm(&grouped, &xs, true, groups);
        (&a * &probe).sum(Kind::Float).backward();
        let a_grad = xs.grad().copy();
        let _ = xs.grad().zero_();
        let parts: Vec<Tensor> =
            (0..groups).map(|g| xs.narrow(0, g * 2, 2).apply_t(&separate, true)).collect::<Vec<_>>();
        let b = Tensor::cat(&parts, 0);
        (&b * &probe).sum(Kind::Float).backward();
        let b_grad = xs.grad();
        let mut pairs = vec![
            ("output", a.detach(), b.detach()),
            ("input gradient", a_grad, b_grad),
            ("running mean", grouped.running_mean.copy(), separate.running_mean.copy()),
            ("running var", grouped.running_var.copy(), separate.running_var.copy()),
        ];
        if affine {
            let g = |bn: &nn::BatchNorm| (bn.ws.as_ref().unwrap().grad(), bn.bs.as_ref().unwrap().grad());
            let ((gw, gb), (sw, sb)) = (g(&grouped), g(&separate));
            pairs.push(("scale gradient", gw, sw));
            pairs.push(("offset gradient", gb, sb));
        }
        for (name, a, b) in pairs {
            let diff = max_abs_diff(&a, &b);
            assert!(diff < 1e-4, "{name} differs by {diff} with {groups} groups (affine {affine})");
        }
        // The statistics really moved (the comparison is not between two untouched buffers).
        assert!(max_abs_diff(&grouped.running_mean, &Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.0])) > 1e-3);
    }
}

/// Partial channel connections: with K = 2 only half of an edge's input channels go through
/// its ops (half the op weights of K = 1), the other half reaches the output unweighted, and
/// the output keeps the cell's shape.
#[test]
fn partial_channels_process_one_kth_of_the_channels() {
    let build = |k: i64| {
        let vs = nn::VarStore::new(Device::Cpu);
        let op = MixedOp::new(&vs.root(), C, 1, k);
        (vs, op)
    };
    let ((full_store, _), (half_store, half)) = (build(1), build(2));
    assert!(trainable_numel(&full_store) as f64 / trainable_numel(&half_store) as f64 > 2.0);
    let xs = input(2, C, 5, 5);
    // All weight on skip_connect: the processed half passes through, the other half bypasses;
    // after the shuffle every input channel is in the output once.
    let mut weights = vec![0f32; 8];
    weights[Primitive::SkipConnect.index()] = 1.0;
    let out = half.forward_t(&xs, &Tensor::from_slice(&weights), true);
    assert_eq!(out.size(), xs.size());
    let sorted = |t: &Tensor| t.sum_dim_intlist([0, 2, 3].as_slice(), false, Kind::Float).sort(0, false).0;
    assert!(max_abs_diff(&sorted(&out), &sorted(&xs)) < 1e-4);
    assert!(max_abs_diff(&out, &xs) > 1e-3, "the channels are shuffled");
}
