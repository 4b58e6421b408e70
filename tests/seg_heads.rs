//! seg heads: the search ASPP, the deployed ASPP and the DeepLabv3+ decoder (shapes, batch 1
//! in training mode, gradients, parameter counts).

mod common;

use common::{has_useful_gradient, trainable_numel};
use seg::{AsppConfig, DecoderConfig, SearchAsppConfig};
use tch::nn::ModuleT;
use tch::{nn, Device, Kind, Tensor};

#[test]
fn search_heads_per_level_at_batch_one_and_two() {
    for (level, (downsample, rate)) in [(4, 24), (8, 12), (16, 6), (32, 3)].into_iter().enumerate() {
        let config = SearchAsppConfig::for_level(cell::Widths::new(2, 5), level, 19);
        assert_eq!(config.rate, rate);
        assert_eq!(config.channels, 5 * 2 * downsample / 4);
        let vs = nn::VarStore::new(Device::Cpu);
        let head = config.build(&vs.root());
        for batch in [1, 2] {
            let x = Tensor::randn([batch, config.in_channels, 7, 5], (Kind::Float, Device::Cpu));
            let y = head.forward_t(&x, true);
            assert_eq!(y.size(), [batch, 19, 7, 5]);
            assert!(bool::try_from(y.isfinite().all()).unwrap(), "batch {batch} at s = {downsample}");
            y.sum(Kind::Float).backward();
        }
        for (name, t) in vs.trainable_variables().iter().enumerate() {
            assert!(has_useful_gradient(t), "search head s = {downsample}: parameter #{name} got no gradient");
        }
    }
}

#[test]
fn deployed_aspp_counts_and_batch_one() {
    let config = AsppConfig::deeplab(40, 8);
    assert_eq!(config.rates, [12, 24, 36]);
    assert_eq!(AsppConfig::deeplab(40, 16).rates, [6, 12, 18]);
    let vs = nn::VarStore::new(Device::Cpu);
    let aspp = config.build(&vs.root());
    let (c_in, c) = (40i64, 256i64);
    let bn = 2 * c;
    let expected = (c_in * c + bn) + 3 * (9 * c_in * c + bn) + (c_in * c + bn) + (5 * c * c + bn);
    assert_eq!(trainable_numel(&vs), expected);
    let x = Tensor::randn([1, c_in, 9, 9], (Kind::Float, Device::Cpu));
    let y = aspp.forward_t(&x, true);
    assert_eq!(y.size(), [1, 256, 9, 9]);
    y.mean(Kind::Float).backward();
    // At batch 1 the pooling branch's BN runs on running statistics; every weight still learns.
    for t in vs.trainable_variables() {
        assert!(has_useful_gradient(&t));
    }
}

#[test]
fn decoder_upsamples_to_the_input_and_learns() {
    let vs = nn::VarStore::new(Device::Cpu);
    let config = DecoderConfig::deeplab(20, 19);
    let decoder = config.build(&vs.root());
    let (c_low, bn) = (20i64, 2 * 256i64);
    let expected = (c_low * 48 + 2 * 48) + (9 * (256 + 48) * 256 + bn) + (9 * 256 * 256 + bn) + (256 * 19 + 19);
    assert_eq!(trainable_numel(&vs), expected);
    // A 65 x 33 input: low-level at rate 4 is 17 x 9, ASPP at rate 8 is 9 x 5.
    let aspp = Tensor::randn([2, 256, 9, 5], (Kind::Float, Device::Cpu));
    let low = Tensor::randn([2, 20, 17, 9], (Kind::Float, Device::Cpu));
    let logits = decoder.forward_t(&aspp, &low, 65, 33, true);
    assert_eq!(logits.size(), [2, 19, 65, 33]);
    let labels = Tensor::randint(19, [2, 65, 33], (Kind::Int64, Device::Cpu));
    logits.cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, 255, 0.0).backward();
    for t in vs.trainable_variables() {
        assert!(has_useful_gradient(&t));
    }
}
