//! `hearth import-corefile` end to end, through the built binary: every Corefile of the corpus
//! (`tests/data/corefiles/`, the platforms' published Corefiles) imports, or fails on the line
//! its header says, and `hearth check` accepts every generated file. Nothing here touches the
//! network: `check` reads files only.

#![cfg(unix)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const HEARTH: &str = env!("CARGO_BIN_EXE_hearth");

/// The corpus files the importer refuses, and the line and reason it gives.
const EXPECTED_ERRORS: &[(&str, usize, &str)] = &[
    ("aks-imports.Corefile", 20, "`import` is not supported"),
    (
        "nodelocaldns.Corefile",
        11,
        "the block for cluster.local caches differently from the `.` block",
    ),
];

fn corpus() -> Vec<PathBuf> {
    let directory = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corefiles");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&directory)
        .expect("tests/data/corefiles")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "Corefile"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "the corpus is there: {files:?}");
    files
}

fn hearth(args: &[&str]) -> Output {
    Command::new(HEARTH)
        .args(args)
        .env_remove("HEARTH_CONFIG")
        .env_remove("RUST_LOG")
        .output()
        .expect("run hearth")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Hosts files the Corefile names live on CoreDNS's pod (`/etc/coredns/NodeHosts`); `check`
/// reads them, so each one missing here is replaced by an empty file in `dir`.
fn with_local_hosts_files(toml_text: &str, dir: &Path) -> String {
    let mut config: toml::Table = toml_text.parse().expect("the output is TOML");
    if let Some(toml::Value::Table(files)) = config.get_mut("files") {
        if let Some(toml::Value::Array(paths)) = files.get_mut("paths") {
            for (index, path) in paths.iter_mut().enumerate() {
                let name = path.as_str().unwrap_or_default().to_owned();
                if !Path::new(&name).exists() {
                    let local = dir.join(format!("hosts-{index}"));
                    std::fs::write(&local, "").unwrap();
                    *path = toml::Value::from(local.display().to_string());
                }
            }
        }
    }
    toml::to_string(&config).unwrap()
}

#[test]
fn every_corpus_corefile_imports_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    for corefile in corpus() {
        let name = corefile.file_name().unwrap().to_string_lossy().into_owned();
        let inline = dir.path().join(format!("{name}.hosts"));
        let output = hearth(&[
            "import-corefile",
            corefile.to_str().unwrap(),
            "--inline-hosts",
            inline.to_str().unwrap(),
        ]);
        if let Some((_, line, reason)) = EXPECTED_ERRORS.iter().find(|(n, _, _)| *n == name) {
            assert_eq!(output.status.code(), Some(64), "{name}: exit status");
            let stderr = text(&output.stderr);
            let expected = format!("{}:{line}: {reason}", corefile.display());
            assert!(
                stderr.starts_with(&expected),
                "{name}: {stderr:?}\n  expected {expected:?}"
            );
            assert!(output.stdout.is_empty(), "{name}: nothing on stdout");
            continue;
        }
        assert!(output.status.success(), "{name}: {}", text(&output.stderr));
        let generated = text(&output.stdout);
        assert!(generated.contains("# Corefile line"), "{name}: comments");
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, with_local_hosts_files(&generated, dir.path())).unwrap();
        let check = hearth(&["check", "--config", config.to_str().unwrap()]);
        assert!(
            check.status.success(),
            "{name}: hearth check refused the generated file:\n{}\n{generated}",
            text(&check.stdout)
        );
    }
}

/// The AKS Corefile's inline `hosts` entries land in the file `--inline-hosts` names, and the
/// generated configuration reads it.
#[test]
fn inline_hosts_are_written_where_asked() {
    let dir = tempfile::tempdir().unwrap();
    let corefile = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/corefiles/aks.Corefile");
    let inline = dir.path().join("inline.hosts");
    let output = hearth(&[
        "import-corefile",
        corefile.to_str().unwrap(),
        "--inline-hosts",
        inline.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert_eq!(
        std::fs::read_to_string(&inline).unwrap(),
        "10.0.0.1 test.example.com\n"
    );
    let config: toml::Table = text(&output.stdout).parse().unwrap();
    let paths = config["files"]["paths"].as_array().unwrap();
    assert_eq!(paths[1].as_str(), inline.to_str());
    let zones = config["forward"]["zone"].as_array().unwrap();
    assert_eq!(zones[0]["name"].as_str(), Some("corp.example"));

    // Without --inline-hosts, the entries are an error on the `hosts` line.
    let output = hearth(&["import-corefile", corefile.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(64));
    assert!(
        text(&output.stderr).contains("aks.Corefile:26: hosts: inline entries"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_missing_corefile_is_a_config_error() {
    let output = hearth(&["import-corefile", "/nonexistent/Corefile"]);
    assert_eq!(output.status.code(), Some(64));
    assert!(text(&output.stderr).starts_with("/nonexistent/Corefile: cannot read"));
}
