//! Activation checkpointing (`train.activation_checkpointing`, issue #16 item 3): a block's
//! activations are not kept for the backward pass but recomputed there from the block's
//! input, as `torch.utils.checkpoint` around each transformer block (torchtitan's `apply_ac`).
//! What is computed stays in the model files; this file decides what is kept and reruns it.
//!
//! burn's own checkpointing strategy works per op (it recomputes memory-bound ops), so the
//! block-level scheme is a segmented forward/backward here. A micro-batch is cut into units,
//! in order: ViT stem (embeddings, pre-LN), each ViT block, connector, text embedding with the
//! image tokens spliced in, each decoder block, final norm + LM head + loss.
//! 1. Forward, first unit first: a recomputed block runs on a gradient-free copy of the model
//!    (no graph) and keeps only its input; every other unit runs on the real parameters from a
//!    fresh leaf input and keeps its graph until the backward pass.
//! 2. Backward, last unit first: a recomputed block reruns on the real parameters from its
//!    saved input (the same values: the model draws no random numbers), then each unit
//!    backwards `Σ out · ∂L/∂out` plus its own terms of the objective (its share of the LM loss
//!    or of the MoE auxiliary loss). That gives its parameters' gradients, summed over the
//!    units (a tied embedding gets two), and `∂L/∂in`, the previous unit's `∂L/∂out`.
//! 3. A parameter's gradient is complete after the last unit adding to it; `finish.rs` then
//!    hands it on: into the micro-batch's sum, or under ZeRO-2 (`parallel.zero = 2`) reduced
//!    to its owner rank at once, so a rank never holds the whole model's local gradient.
//!
//! The gradients are those of one backward pass through the whole graph up to the order of
//! float additions (`tests/activation_checkpointing.rs`). Kept at the peak: the graphs of the
//! units that are not recomputed, each recomputed block's input, and one block's graph; of the
//! gradients, under ZeRO-2, the rank's own sums plus the unfinished local ones.
//! Costs one more forward pass of the recomputed blocks. With expert parallelism the recompute
//! reruns a MoE layer's all-to-all in the backward pass, in the same order on every rank (each
//! rank runs the same decoder units; `tests/activation_checkpointing_ep.rs`).

use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::tensor::{FloatDType, Tensor};
use mm1_models::llm::RopeTables;
use mm1_models::ops::AttentionMask;
use mm1_models::vit::VisionTransformer;
use mm1_models::{Mm1Model, MoeStats};

pub use crate::config::Recompute;
use crate::optim::GroupedAdamW;
use crate::step::{BatchLoss, BatchTensors, StepError, StepSync, head_nll};
use finish::Finisher;

mod finish;

/// Whether `unit` is a block that `recompute` names.
fn recomputed(recompute: Recompute, unit: Unit) -> bool {
    match unit {
        Unit::VitBlock(i) | Unit::Layer(i) => recompute.block(i),
        _ => false,
    }
}

/// One piece of the segmented forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    VitStem,
    VitBlock(usize),
    Connector,
    Embed,
    Layer(usize),
    Head,
}

/// The units of a micro-batch: the vision tower only when it has image placeholders.
fn units(model: &Mm1Model, tensors: &BatchTensors) -> Vec<Unit> {
    let images = tensors.input.images.as_ref().is_some_and(|i| i.dims()[0] > 0);
    model_units(model, images)
}

/// The units of `model`, in forward order (the vision tower's when `vision`).
fn model_units(model: &Mm1Model, vision: bool) -> Vec<Unit> {
    let vision = vision.then(|| {
        let blocks = (0..model.vision.layers.len()).map(Unit::VitBlock);
        std::iter::once(Unit::VitStem).chain(blocks).chain([Unit::Connector])
    });
    let layers = (0..model.llm.layers.len()).map(Unit::Layer);
    vision.into_iter().flatten().chain([Unit::Embed]).chain(layers).chain([Unit::Head]).collect()
}

/// What a unit gives back.
struct UnitOut {
    /// The next unit's input (`None` after the head).
    next: Option<Tensor<3>>,
    /// The unit's own terms of the micro-batch objective, `[1]`.
    objective: Option<Tensor<1>>,
    /// Head: `[b, t]` per-token NLL.
    nll: Option<Tensor<2>>,
    /// MoE layer: weighted aux loss `[1]` and routing stats.
    moe: Option<(Tensor<1>, MoeStats)>,
}

impl UnitOut {
    fn next(x: Tensor<3>) -> Self {
        Self { next: Some(x), objective: None, nll: None, moe: None }
    }

    /// `Σ next · grad_next` plus the unit's own terms: the scalar whose backward gives this
    /// unit's gradients (`None`: nothing to differentiate). Only the product's gradient
    /// w.r.t. `next`, `grad_next` itself, matters, so with bf16 activations the product stays
    /// in `next`'s dtype and only the (unused) sum is cast to the objective's f32.
    fn objective(self, grad_next: Option<Tensor<3>>) -> Option<Tensor<1>> {
        let carried = self.next.zip(grad_next).map(|(y, g)| {
            let dtype = y.dtype();
            (y * g.cast(dtype)).sum().cast(FloatDType::F32)
        });
        match (carried, self.objective) {
            (Some(a), Some(b)) => Some(a + b),
            (a, b) => a.or(b),
        }
    }
}

/// What every unit of a micro-batch shares.
struct Context<'a> {
    tensors: &'a BatchTensors,
    rope: RopeTables,
    mask: AttentionMask,
    /// Scored tokens of the step (the LM loss is divided by it).
    denom: f64,
    /// Router groups × micro-batches (the aux loss is divided by it).
    micro: f64,
}

/// Run `unit` of `model` on `x` (its input; `None` for the first unit).
fn run(unit: Unit, model: &Mm1Model, x: Option<Tensor<3>>, ctx: &Context) -> Result<UnitOut, StepError> {
    let input = || x.clone().expect("every unit after the first has an input");
    Ok(match unit {
        Unit::VitStem => {
            let images = ctx.tensors.input.images.clone().expect("the vision units run with images");
            UnitOut::next(model.vision.embed(images)) // [n, 1+p, dv]
        }
        Unit::VitBlock(i) => UnitOut::next(model.vision.layers[i].forward(input())),
        Unit::Connector => UnitOut::next(model.connect(VisionTransformer::patch_features(input()))), // [n, m, d]
        Unit::Embed => UnitOut::next(model.embed_with_image_tokens(&ctx.tensors.input, x)?), // [b, t, d]
        Unit::Layer(j) => {
            let out = model.llm.layers[j].forward(input(), &ctx.rope, &ctx.mask, None); // kv dropped
            let objective = out.moe.as_ref().map(|(aux, _)| aux.clone().div_scalar(ctx.micro));
            UnitOut { next: Some(out.x), objective, nll: None, moe: out.moe }
        }
        Unit::Head => {
            let nll = head_nll(model, model.llm.final_norm(input()), ctx.tensors); // [b, t]
            let objective = Some(nll.clone().sum().div_scalar(ctx.denom));
            UnitOut { next: None, objective, nll: Some(nll), moe: None }
        }
    })
}

/// Whether any parameter of `unit` takes a gradient.
fn trainable(model: &Mm1Model, unit: Unit) -> bool {
    let mut v = AnyTrainable(false);
    visit_unit(model, unit, &mut v);
    v.0
}

/// Visit the parameters `unit` computes with.
fn visit_unit(model: &Mm1Model, unit: Unit, v: &mut impl ModuleVisitor) {
    match unit {
        Unit::VitStem => {
            model.vision.embeddings.visit(v);
            model.vision.pre_layrnorm.visit(v);
        }
        Unit::VitBlock(i) => model.vision.layers[i].visit(v),
        Unit::Connector => model.connector.visit(v),
        Unit::Embed => model.llm.embed_tokens.visit(v),
        Unit::Layer(j) => model.llm.layers[j].visit(v),
        Unit::Head => {
            model.llm.norm.visit(v);
            match &model.llm.lm_head {
                Some(head) => head.visit(v),
                None => model.llm.embed_tokens.visit(v), // tied
            }
        }
    }
}

struct AnyTrainable(bool);

impl ModuleVisitor for AnyTrainable {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0 |= param.val().is_require_grad();
    }
}

/// What the forward pass keeps of a unit for the backward pass.
enum Saved {
    /// Neither its parameters nor anything before it takes a gradient.
    Nothing,
    /// Recomputed: its input, and whether the input takes a gradient.
    Input(Option<Tensor<3>>, bool),
    /// Kept: the leaf input (when it takes a gradient) and the tracked output.
    Graph(Option<Tensor<3>>, Box<UnitOut>),
}

/// Logged values of the forward pass (no graph).
#[derive(Default)]
struct Logged {
    nll: Option<Tensor<2>>,
    aux: Vec<Tensor<1>>,
    moe: Vec<MoeStats>,
}

impl Logged {
    fn add(&mut self, out: &UnitOut) {
        if let Some(nll) = &out.nll {
            self.nll = Some(nll.clone().detach());
        }
        if let Some((aux, stats)) = &out.moe {
            self.aux.push(aux.clone().detach());
            self.moe.push(stats.clone());
        }
    }
}

/// The input of a tracked unit: a fresh leaf (taking a gradient when `grad`), cut from the
/// graph that made it.
fn leaf(x: Option<Tensor<3>>, grad: bool) -> Option<Tensor<3>> {
    x.map(|x| if grad { x.detach().require_grad() } else { x.detach() })
}

/// One micro-batch's loss and gradients (of `loss_sum / denom + aux / micro`, as
/// `train_step_synced`) with the blocks `policy` names recomputed in the backward pass. With
/// `reduce` given, each gradient is reduced over the ranks as soon as the backward pass has
/// finished it ([`StepSync::reduce_group`], ZeRO-2), and the sums that `reduce` keeps are
/// returned (`finish.rs`).
pub fn batch_grads(
    model: &Mm1Model,
    optim: &GroupedAdamW,
    tensors: BatchTensors,
    policy: Recompute,
    (denom, micro): (f64, f64),
    reduce: Option<&dyn StepSync>,
) -> Result<(BatchLoss, GradientsParams), StepError> {
    let input = &tensors.input;
    let (rope, mask) = model.llm.layer_inputs(input.position_ids.clone(), input.segment_ids.clone());
    let ctx = Context { tensors: &tensors, rope, mask, denom, micro };
    let units = units(model, &tensors);
    let no_graph = model.clone().no_grad(); // the same weights, nothing tracked

    // 1. forward, keeping graphs or inputs
    let (mut saved, mut logged) = (Vec::with_capacity(units.len()), Logged::default());
    let (mut x, mut input_grad) = (None, false);
    for &unit in &units {
        let own = trainable(model, unit);
        if !(own || input_grad) || recomputed(policy, unit) {
            let out = run(unit, &no_graph, x.clone(), &ctx)?;
            logged.add(&out);
            let keep = if own || input_grad { Saved::Input(x, input_grad) } else { Saved::Nothing };
            saved.push((unit, keep));
            x = out.next;
        } else {
            let leaf_in = leaf(x.take(), input_grad);
            let out = run(unit, model, leaf_in.clone(), &ctx)?;
            logged.add(&out);
            x = out.next.clone().map(Tensor::detach);
            saved.push((unit, Saved::Graph(leaf_in, Box::new(out))));
        }
        input_grad |= own;
    }

    // 2. backward over every unit of the model, last first, carrying ∂L/∂out; each unit's
    //    finished gradients handed on right after it (a unit this batch skipped: none)
    let all = model_units(model, true);
    let mut finisher = Finisher::new(model, &all, reduce);
    let mut grad_next: Option<Tensor<3>> = None;
    for &unit in all.iter().rev() {
        if saved.last().is_some_and(|(u, _)| *u == unit) {
            let (_, keep) = saved.pop().expect("checked");
            if let Some(grads) = backward(unit, keep, model, optim, &ctx, &mut grad_next)? {
                finisher.add(grads);
            }
        }
        finisher.finish(unit)?;
    }
    debug_assert!(saved.is_empty(), "every unit run is a unit of the model");

    let zeros = Tensor::<1>::zeros([1], &tensors.loss_mask.device());
    let aux = logged.aux.into_iter().fold(zeros, |a, b| a + b);
    let nll = logged.nll.expect("the head unit always runs");
    Ok((BatchLoss { nll, aux, moe: logged.moe }, finisher.end()?))
}

/// The backward pass of one unit from what the forward pass kept of it (rerunning a recomputed
/// block): its parameters' gradients (`None`: nothing to differentiate), with `grad_next` taken
/// as `∂L/∂out` and replaced by `∂L/∂in`.
fn backward(
    unit: Unit,
    keep: Saved,
    model: &Mm1Model,
    optim: &GroupedAdamW,
    ctx: &Context,
    grad_next: &mut Option<Tensor<3>>,
) -> Result<Option<GradientsParams>, StepError> {
    let (leaf_in, out) = match keep {
        Saved::Nothing => return Ok(None),
        Saved::Graph(leaf_in, out) => (leaf_in, *out),
        Saved::Input(x, grad) => {
            let leaf_in = leaf(x, grad);
            let out = run(unit, model, leaf_in.clone(), ctx)?;
            (leaf_in, out)
        }
    };
    let Some(objective) = out.objective(grad_next.take()) else { return Ok(None) };
    let mut grads = objective.backward();
    *grad_next = leaf_in.and_then(|x| x.grad_remove(&mut grads));
    Ok(Some(optim.grads(grads, model)))
}
