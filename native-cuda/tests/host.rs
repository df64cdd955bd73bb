//! Host-side checks that need no GPU: device discovery fails cleanly, the kernel enum covers every
//! kernel file and matches each entry point's declared parameters, and the generated prelude.

use std::collections::BTreeSet;
use std::path::Path;

use stde_core::backend::BackendError;
use stde_cuda::kernels::{self, Kernel, ParamType, Source, HEADERS, MAX_ORDER};
use stde_cuda::{cuda_available, CudaBackend, CudaParams};

#[test]
fn opening_agrees_with_cuda_available_and_never_panics() {
    let available = cuda_available();
    match CudaBackend::new(CudaParams::default()) {
        Ok(b) => assert!(
            available,
            "the backend opened ({b:?}) but cuda_available() said no"
        ),
        Err(BackendError::NoDevice { backend, reason }) => {
            assert_eq!(backend, "cuda");
            assert!(!reason.is_empty(), "a NoDevice error must say why");
            // Without a device `auto` must not pick CUDA; with one, opening may still fail for
            // another reason (no cuBLAS, no NVRTC), which the reason names.
            if !available {
                eprintln!("CudaBackend::new without a device: {reason}");
            }
        }
        Err(e) => panic!("opening without a usable device must be NoDevice, got {e}"),
    }
}

#[test]
fn a_device_ordinal_past_the_last_is_no_device() {
    match CudaBackend::new(CudaParams {
        device_ordinal: 4096,
        allow_tf32: false,
    }) {
        Err(BackendError::NoDevice { .. }) => {}
        other => panic!("device 4096 must be NoDevice, got {other:?}"),
    }
}

#[test]
fn default_params_use_the_first_device_without_tf32() {
    let p = CudaParams::default();
    assert_eq!(p.device_ordinal, 0);
    assert!(!p.allow_tf32);
}

fn kernels_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels")
}

#[test]
fn every_file_under_kernels_is_embedded_and_current() {
    let mut on_disk = BTreeSet::new();
    for entry in std::fs::read_dir(kernels_dir()).expect("kernels/ is readable") {
        let path = entry.expect("directory entry").path();
        on_disk.insert(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    let mut embedded = BTreeSet::new();
    for s in Source::ALL {
        embedded.insert(s.file_name().to_string());
        let text = std::fs::read_to_string(kernels_dir().join(s.file_name())).unwrap();
        assert_eq!(
            text,
            s.text(),
            "{} differs from its embedded copy",
            s.file_name()
        );
    }
    for h in HEADERS {
        embedded.insert(h.file_name.to_string());
    }
    assert_eq!(
        on_disk, embedded,
        "files under kernels/ vs files the crate embeds"
    );
}

#[test]
fn every_file_opens_with_a_comment_saying_what_it_owns() {
    for (name, text) in Source::ALL
        .iter()
        .map(|s| (s.file_name(), s.text()))
        .chain(HEADERS.iter().map(|h| (h.file_name, h.text)))
    {
        assert!(
            text.starts_with(&format!("// {name}: ")),
            "{name} must open with `// {name}: <what it owns>`"
        );
    }
}

/// The `extern "C" __global__` entry points of a file: name and parameter list text.
fn entry_points(text: &str) -> Vec<(String, String)> {
    let marker = "extern \"C\" __global__ void ";
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        let after = &rest[at + marker.len()..];
        let open = after
            .find('(')
            .expect("an entry point has a parameter list");
        let close = after.find(')').expect("a parameter list closes");
        out.push((
            after[..open].trim().to_string(),
            after[open + 1..close].to_string(),
        ));
        rest = &after[close..];
    }
    out
}

/// A parameter declaration (`const float* __restrict__ z`) as (name, type).
fn parse_param(decl: &str) -> (String, ParamType) {
    let words: Vec<&str> = decl
        .split_whitespace()
        .filter(|w| *w != "__restrict__")
        .collect();
    let (name, ty) = words.split_last().expect("a parameter has a name");
    let ty = ty.join(" ");
    let ty = match ty.as_str() {
        "const float*" => ParamType::F32In,
        "float*" => ParamType::F32Out,
        "const u32*" => ParamType::U32In,
        "u32" => ParamType::U32,
        "u64" => ParamType::U64,
        "float" => ParamType::F32,
        other => panic!("parameter {name}: type `{other}` has no ParamType"),
    };
    (name.to_string(), ty)
}

#[test]
fn kernel_enum_matches_the_entry_points_and_their_parameters() {
    let mut seen = BTreeSet::new();
    for source in Source::ALL {
        let entries = entry_points(source.text());
        let declared: BTreeSet<&str> = source.kernels().map(Kernel::entry).collect();
        let found: BTreeSet<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(declared, found, "entry points of {}", source.file_name());
        for (name, params) in &entries {
            let kernel = Kernel::ALL
                .into_iter()
                .find(|k| k.entry() == name)
                .expect("every entry point is a Kernel");
            let parsed: Vec<(String, ParamType)> = params
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(parse_param)
                .collect();
            let expected: Vec<(String, ParamType)> = kernel
                .params()
                .iter()
                .map(|(n, t)| (n.to_string(), *t))
                .collect();
            assert_eq!(
                parsed,
                expected,
                "parameters of {name} in {}",
                source.file_name()
            );
            assert!(seen.insert(kernel), "{name} appears twice");
        }
    }
    assert_eq!(
        seen.len(),
        Kernel::ALL.len(),
        "every Kernel has an entry point"
    );
}

#[test]
fn only_the_jet_file_is_specialised_by_order() {
    for source in Source::ALL {
        let uses_k = source.text().contains("STDE_K");
        assert_eq!(
            uses_k,
            source.depends_on_order(),
            "{}: uses STDE_K = {uses_k}",
            source.file_name()
        );
        let orders = source.orders();
        if source.depends_on_order() {
            assert_eq!(orders, (0..=MAX_ORDER).map(Some).collect::<Vec<_>>());
        } else {
            assert_eq!(orders, vec![None]);
        }
    }
}

#[test]
fn prelude_defines_the_order_for_jet_files_only() {
    let p = kernels::prelude(Source::JetActivation, Some(4));
    assert!(
        p.starts_with("// "),
        "the prelude opens with a comment: {p}"
    );
    assert!(p.lines().any(|l| l == "#define STDE_K 4"), "{p}");
    let p = kernels::prelude(Source::Adam, None);
    assert!(!p.contains("STDE_K"), "{p}");
    for k in [0, 1, 2, 7, MAX_ORDER] {
        assert!(kernels::prelude(Source::JetActivation, Some(k))
            .contains(&format!("#define STDE_K {k}\n")));
    }
}

#[test]
fn program_text_is_prelude_headers_then_file_with_line_directives() {
    let text = kernels::program_text(Source::Sample, None);
    let common = text
        .find("#line 1 \"common.cuh\"")
        .expect("common.cuh is included");
    let philox = text
        .find("#line 1 \"philox.cuh\"")
        .expect("philox.cuh is included");
    let file = text
        .find("#line 1 \"sample.cu\"")
        .expect("sample.cu follows");
    assert!(text.starts_with(&kernels::prelude(Source::Sample, None)));
    assert!(common < philox && philox < file);
    let jet = kernels::program_text(Source::JetActivation, Some(3));
    assert!(jet.contains("#define STDE_K 3\n"));
    assert!(!jet.contains("philox.cuh"), "only the samplers need Philox");
    assert_eq!(
        kernels::program_name(Source::JetActivation, Some(3)),
        "jet_activation.cu[K=3]"
    );
}

#[test]
#[should_panic(expected = "not specialised by the jet order")]
fn an_order_for_an_order_free_file_panics() {
    let _ = kernels::prelude(Source::Adam, Some(2));
}

#[test]
#[should_panic(expected = "orders up to 16")]
fn an_order_above_the_maximum_panics() {
    let _ = kernels::prelude(Source::JetActivation, Some(MAX_ORDER + 1));
}

#[test]
#[should_panic(expected = "needs a jet order")]
fn a_jet_file_without_order_panics() {
    let _ = kernels::prelude(Source::JetActivation, None);
}

#[test]
fn compile_options_target_the_real_architecture_without_fast_math() {
    let opts = kernels::compile_options(kernels::Arch { major: 9, minor: 0 });
    assert!(
        opts.contains(&"--gpu-architecture=sm_90".to_string()),
        "{opts:?}"
    );
    assert!(!opts.iter().any(|o| o.contains("fast")), "{opts:?}");
}

#[test]
fn compiling_without_nvrtc_is_an_error_not_a_panic() {
    if kernels::nvrtc_available() {
        eprintln!("skipped: NVRTC is present here (tests/nvrtc_compile.rs compiles for real)");
        return;
    }
    let err = kernels::compile(Source::Adam, None, kernels::CHECKED_ARCHS[0]).unwrap_err();
    assert_eq!(err, kernels::CompileError::NvrtcNotFound);
}
