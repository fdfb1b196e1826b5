//! `train.precision` applied to a built model: `bf16` mixed precision (Micikevicius et al.
//! 2018; bf16 as MM1 and torchtitan train) keeps the parameters, their gradients and the AdamW
//! state in `f32` and runs the activations in `bf16` (`Mm1Model::with_compute_dtype`). Nothing
//! else in the trainer changes: the optimizer, clipping, checkpoints and the export see `f32`
//! parameters and gradients as before. See `docs/training.md`, "Mixed precision".

use burn::prelude::*;
use burn::tensor::FloatDType;
use mm1_models::Mm1Model;

use crate::config::{ConfigError, DeviceKind, Precision};

/// The dtype of the model's activations under `precision`.
pub fn compute_dtype(precision: Precision) -> FloatDType {
    match precision {
        Precision::F32 => FloatDType::F32,
        Precision::Bf16 => FloatDType::BF16,
    }
}

/// `model` computing in `precision`; an error naming `train.precision` and the device when the
/// device has no `bf16` tensors (e.g. `wgpu` on a Vulkan driver without bf16 arithmetic).
pub fn apply(
    model: Mm1Model,
    precision: Precision,
    kind: DeviceKind,
    device: &Device,
) -> Result<Mm1Model, ConfigError> {
    let dtype = compute_dtype(precision);
    if !device.supports_dtype(dtype) {
        return Err(ConfigError::invalid(
            "train.precision",
            format!(
                "\"{}\" needs bf16 tensors, which the {} device ({device:?}) does not support; use \"f32\"",
                precision.name(),
                kind.name()
            ),
        ));
    }
    Ok(model.with_compute_dtype(dtype))
}
