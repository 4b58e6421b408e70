//! Segmentation parts of Auto-DeepLab (C. Liu et al., CVPR 2019, arXiv 1901.02985, §3.2, §5):
//! ASPP and DeepLabv3+ heads, Cityscapes and synthetic data, metrics and palette.
//!
//! Empty for now: its contents arrive with the seg issue.
