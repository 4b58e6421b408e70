//! Using a trained network: where it comes from ([`trained`]), the model card its weights carry
//! ([`model_card`]), evaluation with the Cityscapes metric ([`evaluate`]), predictions
//! ([`predict`], logits as NumPy files through [`npy`]) and export to TorchScript and ONNX
//! ([`export`], with its Python half `export.py`).

pub mod evaluate;
pub mod export;
pub mod model_card;
pub mod npy;
pub mod predict;
pub mod trained;
