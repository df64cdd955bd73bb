//! The JavaScript face of the page (wasm32 only): a [`Session`] owns the backend chosen at page
//! load (WebGPU through `stde-wgpu`, else the CPU backend compiled to wasm) and the current run.
//! Every method that reads from the device returns a `Promise`; nothing blocks.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::Promise;
use stde_core::backend::{BackendError, CpuBackend};
use stde_core::train::{TrainConfig, TrainError};
use stde_wgpu::{WgpuBackend, WgpuParams};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::driver::Driver;
use crate::form::{default_fields, read_text, FieldError, FormFields, CUSTOM};
use crate::problems::{self, ProblemInfo};
use stde_core::problem::ProblemSpec;

/// Installs the panic hook, so that a Rust panic reaches the console with its message.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// The backend of the page, created once and leaked: a [`Trainer`](stde_core::train::Trainer)
/// borrows its backend, and a reset re-creates only the run.
#[derive(Clone, Copy)]
enum Device {
    Gpu(&'static WgpuBackend),
    Cpu(&'static CpuBackend),
}

/// The current run on the page's backend (boxed: a driver holds every buffer handle of a run).
enum Run {
    Gpu(Box<Driver<'static, WgpuBackend>>),
    Cpu(Box<Driver<'static, CpuBackend>>),
}

/// Runs `$body` with `$d` bound to the driver inside a [`Run`], whatever its backend.
macro_rules! with_driver {
    ($run:expr, $d:ident => $body:expr) => {
        match $run {
            Run::Gpu($d) => $body,
            Run::Cpu($d) => $body,
        }
    };
}

struct Inner {
    device: Device,
    description: String,
    fallback_reason: Option<String>,
    /// The run, taken out while one of its futures is pending.
    run: RefCell<Option<Run>>,
    /// Bumped by every configure/clear, so that a future finishing after a reset drops its run
    /// instead of restoring it.
    generation: Cell<u64>,
}

/// The page's training session.
#[wasm_bindgen]
pub struct Session {
    inner: Rc<Inner>,
}

/// A JS `Error` whose `name` says what failed (`DeviceLost`, `Diverged`, `OutOfMemory`, …).
fn js_error(name: &str, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    e.set_name(name);
    e.into()
}

fn train_error(e: &TrainError) -> JsValue {
    let name = match e {
        TrainError::Config(_) => "ConfigError",
        TrainError::Diverged { .. } => "Diverged",
        TrainError::Backend(BackendError::DeviceLost { .. }) => "DeviceLost",
        TrainError::Backend(BackendError::OutOfMemory { .. }) => "OutOfMemory",
        TrainError::Backend(BackendError::NoDevice { .. }) => "NoDevice",
    };
    js_error(name, &e.to_string())
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<JsValue, JsValue> {
    serde_json::to_string(v)
        .map(JsValue::from)
        .map_err(|e| js_error("InternalError", &e.to_string()))
}

/// Whether `navigator.gpu` exists (WebGPU is exposed to this page at all).
fn navigator_has_gpu() -> bool {
    web_sys::window()
        .map(|w| js_sys::Reflect::has(&w.navigator(), &JsValue::from_str("gpu")).unwrap_or(false))
        .unwrap_or(false)
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("description", &self.inner.description)
            .field("fallback_reason", &self.inner.fallback_reason)
            .finish_non_exhaustive()
    }
}

#[wasm_bindgen]
impl Session {
    /// Picks the backend: WebGPU when `prefer_gpu` and the browser gives an adapter and a device,
    /// otherwise the CPU backend (one thread: wasm32 here has none). `adapter_label` is the
    /// adapter's description as the page read it from `GPUAdapter.info` (wgpu only sees the
    /// often-empty `description` field).
    pub async fn create(prefer_gpu: bool, adapter_label: String) -> Session {
        let mut fallback_reason = None;
        let mut gpu = None;
        if !prefer_gpu {
            fallback_reason = Some("WebGPU was not requested".to_string());
        } else if !navigator_has_gpu() {
            fallback_reason = Some(
                "this browser exposes no WebGPU (navigator.gpu is missing; Chromium needs a \
                 secure context and, headless, --enable-unsafe-webgpu)"
                    .to_string(),
            );
        } else {
            match WgpuBackend::new(WgpuParams::default()).await {
                Ok(b) => gpu = Some(b),
                // wgpu's message speaks of native drivers; in a browser the adapter is the
                // browser's decision.
                Err(BackendError::NoDevice { reason, .. }) if reason.contains("adapter") => {
                    fallback_reason = Some(
                        "navigator.gpu.requestAdapter() gave no adapter (the GPU may be \
                         blocklisted; headless Chromium needs --enable-unsafe-webgpu)"
                            .to_string(),
                    );
                }
                Err(e) => fallback_reason = Some(format!("WebGPU could not start: {e}")),
            }
        }
        let (device, description) = match gpu {
            Some(b) => {
                let b: &'static WgpuBackend = Box::leak(Box::new(b));
                let label = if adapter_label.trim().is_empty() {
                    b.adapter_info().name.clone()
                } else {
                    adapter_label
                };
                let kind = if b.is_software() {
                    "software adapter"
                } else {
                    "hardware adapter"
                };
                (
                    Device::Gpu(b),
                    format!(
                        "WebGPU: {label} ({kind}, {:?})",
                        b.adapter_info().device_type
                    ),
                )
            }
            None => {
                let b: &'static CpuBackend = Box::leak(Box::new(CpuBackend::with_threads(1)));
                (
                    Device::Cpu(b),
                    "CPU: stde's f32 backend compiled to WebAssembly, one thread".to_string(),
                )
            }
        };
        Session {
            inner: Rc::new(Inner {
                device,
                description,
                fallback_reason,
                run: RefCell::new(None),
                generation: Cell::new(0),
            }),
        }
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        match self.inner.device {
            Device::Gpu(_) => "webgpu".into(),
            Device::Cpu(_) => "cpu".into(),
        }
    }

    /// The backend and adapter in words.
    #[wasm_bindgen(getter)]
    pub fn description(&self) -> String {
        self.inner.description.clone()
    }

    /// Why the page runs on the CPU, if it does.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.inner.fallback_reason.clone()
    }

    /// The form's default fields, as JSON (the text box holds an example problem).
    pub fn defaults() -> Result<JsValue, JsValue> {
        to_json(&default_fields())
    }

    /// The shipped problems the page offers, as a JSON array of `{"name", "description",
    /// "min_dim", "max_dim", "time_end", "exact", "reference", "suggested_estimator",
    /// "suggested_rand_dims", "defaults", "text"}` (`defaults`: the form's fields for it).
    pub fn problems() -> Result<JsValue, JsValue> {
        to_json(&problems::catalog())
    }

    /// Reads a problem typed into the page: `{"problem": …}` as in [`Session::problems`], with
    /// `defaults` naming the text box, or `{"error": {"field", "message", "at"}}` with the place
    /// of its first mistake (`at`: `line`, `col`, and `start`/`end` in UTF-16 units).
    pub fn inspect(text: &str) -> Result<JsValue, JsValue> {
        match read_text(text) {
            Ok(spec) => to_json(&Checked {
                error: None,
                problem: Some(custom_info(&spec, text)),
            }),
            Err(e) => to_json(&Checked {
                error: Some(e),
                problem: None,
            }),
        }
    }

    /// Checks the form (JSON of its fields): `{"error": null | {"field", "message", "at"?},
    /// "problem": null | …}`, the first bad field (the text box's problem is read, instantiated and
    /// planned at the chosen dimension) and the description of the problem when it reads.
    pub fn check(fields: &str) -> Result<JsValue, JsValue> {
        let fields = parse_fields(fields)?;
        let checked = match problem_of(&fields) {
            Ok((spec, info)) => Checked {
                error: fields.check_against(spec).err(),
                problem: Some(info),
            },
            Err(e) => Checked {
                error: Some(e),
                problem: None,
            },
        };
        to_json(&checked)
    }

    /// Starts a fresh run from the form's fields (JSON), dropping any previous run. Returns the
    /// JSON `{"config": …, "problem": …}`: the run's full configuration (the keys of
    /// `stde train --config`) and the description of its problem.
    ///
    /// # Errors
    /// A `FieldError` (`name`), with `field` set, and `line`, `col`, `start` and `end` when the
    /// mistake is in the text box's problem; `OutOfMemory` if the device cannot hold the run.
    pub fn configure(&self, fields: &str) -> Result<JsValue, JsValue> {
        self.clear();
        let fields = parse_fields(fields)?;
        let (spec, info) = problem_of(&fields).map_err(|e| field_error(&e))?;
        let run = fields.check_against(spec).map_err(|e| field_error(&e))?;
        let new = self
            .new_run(run.config.clone(), &run.spec)
            .map_err(|e| train_error(&e))?;
        *self.inner.run.borrow_mut() = Some(new);
        to_json(&Configured {
            config: &run.config,
            problem: &info,
        })
    }

    /// Drops the current run (reset).
    pub fn clear(&self) {
        self.inner.generation.set(self.inner.generation.get() + 1);
        self.inner.run.borrow_mut().take();
    }

    /// Enqueues up to `max_steps` steps (never past the next evaluation) and resolves to the
    /// tick's JSON (`step`, `ran`, `loss`, `losses`, `lr`, `evaluate`, `finished`). The CPU
    /// backend reads every step's loss (a copy); WebGPU only the last (one read-back per tick).
    pub fn advance(&self, max_steps: u32) -> Promise {
        let n = u64::from(max_steps);
        self.with_run(move |mut run| async move {
            let r = match &mut run {
                Run::Gpu(d) => d.advance(n, false).await,
                Run::Cpu(d) => d.advance(n, true).await,
            };
            (
                run,
                r.map_err(|e| train_error(&e)).and_then(|t| to_json(&t)),
            )
        })
    }

    /// Evaluates the test errors; resolves to `{"step", "rel_l2", "rel_l1", "exact_rms",
    /// "point_value"}` (for a problem judged at one point, the errors are those of the model's
    /// value there, `point_value`, and `null` at a dimension without a reference value).
    pub fn evaluate(&self) -> Promise {
        self.with_run(|mut run| async move {
            let r = with_driver!(&mut run, d => d.evaluate().await);
            (
                run,
                r.map_err(|e| train_error(&e)).and_then(|t| to_json(&t)),
            )
        })
    }

    /// The heatmaps' data on the slice `(x₁, x₂, 0, …, 0)`; resolves to the JSON of
    /// `{"n", "step", "u", "exact", "diff", "has_exact"}` (row-major, top row `x₂ = 1`, `null`
    /// outside the disk, and everywhere in `exact` and `diff` for a problem without `u*`).
    pub fn slice(&self) -> Promise {
        self.with_run(|mut run| async move {
            let r = with_driver!(&mut run, d => d.slice().await);
            (
                run,
                r.map_err(|e| train_error(&e)).and_then(|t| to_json(&t)),
            )
        })
    }
}

fn parse_fields(fields: &str) -> Result<FormFields, JsValue> {
    serde_json::from_str(fields).map_err(|e| js_error("InternalError", &format!("form: {e}")))
}

/// What [`Session::check`] and [`Session::inspect`] answer.
#[derive(serde::Serialize)]
struct Checked {
    error: Option<FieldError>,
    problem: Option<ProblemInfo>,
}

/// What [`Session::configure`] answers.
#[derive(serde::Serialize)]
struct Configured<'a> {
    config: &'a TrainConfig,
    problem: &'a ProblemInfo,
}

fn custom_info(spec: &ProblemSpec, text: &str) -> ProblemInfo {
    let mut info = problems::describe(spec, "", Some(text));
    // The page has the text already: no second copy in every answer.
    info.defaults.problem_text.clear();
    info
}

/// The problem the fields name, and its description.
fn problem_of(fields: &FormFields) -> Result<(ProblemSpec, ProblemInfo), FieldError> {
    let spec = fields.problem()?;
    let info = if fields.equation == CUSTOM {
        custom_info(&spec, &fields.problem_text)
    } else {
        // `problem()` found it among the offers.
        problems::info(&fields.equation)
            .cloned()
            .ok_or_else(|| FieldError {
                field: "equation",
                message: format!("problem {:?} is not offered", fields.equation),
                at: None,
            })?
    };
    Ok((spec, info))
}

/// A JS `Error` named `FieldError` with `field`, and `line`, `col`, `start`, `end` when located.
fn field_error(e: &FieldError) -> JsValue {
    let err = js_error("FieldError", &e.message);
    let set = |k: &str, v: JsValue| {
        let _ = js_sys::Reflect::set(&err, &k.into(), &v);
    };
    set("field", e.field.into());
    if let Some(at) = e.at {
        for (k, v) in [
            ("line", at.line),
            ("col", at.col),
            ("start", at.start),
            ("end", at.end),
        ] {
            set(k, JsValue::from_f64(v as f64));
        }
    }
    err
}

impl Session {
    fn new_run(&self, cfg: TrainConfig, spec: &ProblemSpec) -> Result<Run, TrainError> {
        Ok(match self.inner.device {
            Device::Gpu(b) => Run::Gpu(Box::new(Driver::new(b, cfg, spec)?)),
            Device::Cpu(b) => Run::Cpu(Box::new(Driver::new(b, cfg, spec)?)),
        })
    }

    /// Takes the run out for the duration of `f`'s future and puts it back afterwards, unless the
    /// page reset meanwhile. A call while another is pending is refused (`Busy`): the page awaits
    /// each call before the next.
    fn with_run<F, Fut>(&self, f: F) -> Promise
    where
        F: FnOnce(Run) -> Fut + 'static,
        Fut: std::future::Future<Output = (Run, Result<JsValue, JsValue>)> + 'static,
    {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let run = inner.run.borrow_mut().take().ok_or_else(|| {
                js_error(
                    "Busy",
                    "no run to drive: configure one first, and await each call before the next",
                )
            })?;
            let generation = inner.generation.get();
            let (run, result) = f(run).await;
            if inner.generation.get() == generation {
                *inner.run.borrow_mut() = Some(run);
            }
            result
        })
    }
}
