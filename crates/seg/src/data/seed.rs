//! Seeds of independent random streams: every synthetic image and every augmented sample
//! draws from its own ChaCha8 stream, seeded by SplitMix64 over a few integers, so results do
//! not depend on the order or the thread that computes them.

/// A well-mixed 64-bit seed from `seed` and two indices (SplitMix64 finaliser).
pub fn mix_seed(seed: u64, a: u64, b: u64) -> u64 {
    let mut z = seed ^ a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
