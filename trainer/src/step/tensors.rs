//! A data-crate `Batch` (flat row-major buffers) as model tensors, every length checked first.

use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use mm1_data::Batch;
use mm1_models::Mm1Input;

use super::StepError;

/// One batch as tensors on a device.
///
/// # Shapes
/// - `input`: see [`Mm1Input`] (`[b, t]` ids/masks, `[n, 3, h, w]` images)
/// - `targets`: `[b, t]` next-token ids
/// - `loss_mask`: `[b, t]` 1.0 where the target is scored, else 0.0
#[derive(Debug, Clone)]
pub struct BatchTensors {
    pub input: Mm1Input,
    pub targets: Tensor<2, Int>,
    pub loss_mask: Tensor<2>,
    /// The scored positions (`None` when the batch scores none).
    pub scored: Option<Scored>,
}

/// The positions whose next token is scored, and those targets.
///
/// # Shapes
/// - `rows`: `[n]` flat indices into `b·t`; `targets`: `[1, n]`
#[derive(Debug, Clone)]
pub struct Scored {
    pub rows: Tensor<1, Int>,
    pub targets: Tensor<2, Int>,
}

impl Scored {
    /// The scored positions of `batch` (`None` when there are none).
    pub(crate) fn of(batch: &Batch, device: &Device) -> Option<Self> {
        let (rows, targets): (Vec<i64>, Vec<i64>) = (batch.loss_mask.iter().zip(&batch.targets))
            .enumerate()
            .filter(|(_, (scored, _))| **scored)
            .map(|(i, (_, &target))| (i as i64, target as i64))
            .unzip();
        let n = rows.len();
        (n > 0).then(|| Self {
            rows: Tensor::from_data(TensorData::new(rows, [n]), device),
            targets: Tensor::from_data(TensorData::new(targets, [1, n]), device),
        })
    }
}

fn ids(v: &[u32], [b, t]: [usize; 2], device: &Device) -> Tensor<2, Int> {
    let v: Vec<i64> = v.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(v, [b, t]), device)
}

fn flags(v: &[bool], [b, t]: [usize; 2], device: &Device) -> Tensor<2, Bool> {
    Tensor::from_data(TensorData::new(v.to_vec(), [b, t]), device)
}

/// Turn the data crate's flat buffers into tensors, checking every length first.
pub fn batch_to_tensors(batch: &Batch, device: &Device) -> Result<BatchTensors, StepError> {
    let (b, t) = (batch.batch_size, batch.seq_len);
    let bt = b * t;
    let err = |msg: String| StepError::Batch { index: batch.index, msg };
    for (name, len) in [
        ("input_ids", batch.input_ids.len()),
        ("targets", batch.targets.len()),
        ("loss_mask", batch.loss_mask.len()),
        ("image_mask", batch.image_mask.len()),
        ("segment_ids", batch.segment_ids.len()),
        ("position_ids", batch.position_ids.len()),
        ("source_ids", batch.source_ids.len()),
    ] {
        if len != bt {
            return Err(err(format!("{name} has {len} entries, expected b*t = {b}*{t} = {bt}")));
        }
    }
    let s = batch.image_size;
    let want = batch.n_images * 3 * s * s;
    if batch.images.len() != want {
        return Err(err(format!(
            "images has {} floats, expected n*3*h*w = {}*3*{s}*{s} = {want}",
            batch.images.len(),
            batch.n_images
        )));
    }
    let images = (batch.n_images > 0).then(|| {
        Tensor::<4>::from_data(TensorData::new(batch.images.clone(), [batch.n_images, 3, s, s]), device)
    });
    let mask: Vec<f32> = batch.loss_mask.iter().map(|&m| m as u8 as f32).collect();
    Ok(BatchTensors {
        input: Mm1Input {
            tokens: ids(&batch.input_ids, [b, t], device),
            image_mask: flags(&batch.image_mask, [b, t], device),
            segment_ids: ids(&batch.segment_ids, [b, t], device),
            position_ids: ids(&batch.position_ids, [b, t], device),
            images,
        },
        targets: ids(&batch.targets, [b, t], device),
        loss_mask: Tensor::from_data(TensorData::new(mask, [b, t]), device),
        scored: Scored::of(batch, device),
    })
}
