//! The configurations we ship are the ones we test: `config/hearth.toml`, every example, and
//! every TOML snippet in the README parse; a stray key in any table of any of them is refused.

use std::path::{Path, PathBuf};

use hearth::config::{Config, Overrides, DEFAULT_CONFIG};

fn shipped_configs() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut paths = vec![root.join("hearth.toml")];
    let mut examples: Vec<PathBuf> = std::fs::read_dir(root.join("examples"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    examples.sort();
    assert!(!examples.is_empty(), "config/examples has examples");
    paths.extend(examples);
    paths
}

/// The ```toml blocks of the README.
fn readme_snippets() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let mut snippets = Vec::new();
    let mut current: Option<String> = None;
    for line in readme.lines() {
        match (&mut current, line.trim_start()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(snippet), "```") => {
                snippets.push(std::mem::take(snippet));
                current = None;
            }
            (Some(snippet), _) => {
                snippet.push_str(line);
                snippet.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(!snippets.is_empty(), "the README has TOML snippets");
    snippets
}

#[test]
fn the_embedded_default_is_the_shipped_file() {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/hearth.toml"))
            .unwrap();
    assert_eq!(DEFAULT_CONFIG, shipped);
}

#[test]
fn every_shipped_config_and_readme_snippet_parses() {
    for path in shipped_configs() {
        if let Err(error) = Config::load(Some(&path), &Overrides::default()) {
            panic!("{error}");
        }
    }
    for (index, snippet) in readme_snippets().iter().enumerate() {
        if let Err(error) = Config::from_toml(
            snippet,
            &format!("README.md snippet {}", index + 1),
            &Overrides::default(),
        ) {
            panic!("{error}\n---\n{snippet}");
        }
    }
}

/// Adds `bogus_key = 1` to each table in turn and expects the error to name the table, the key
/// and the line.
#[test]
fn a_stray_key_in_any_table_is_refused() {
    let mut texts: Vec<(String, String)> = shipped_configs()
        .iter()
        .map(|path| {
            (
                path.display().to_string(),
                std::fs::read_to_string(path).unwrap(),
            )
        })
        .collect();
    texts.extend(
        readme_snippets()
            .into_iter()
            .enumerate()
            .map(|(i, s)| (format!("README snippet {}", i + 1), s)),
    );
    let mut tables_checked = 0;
    for (origin, text) in texts {
        let lines: Vec<&str> = text.lines().collect();
        for (index, line) in lines.iter().enumerate() {
            let Some(table) = line
                .trim()
                .strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
            else {
                continue;
            };
            let mut edited: Vec<&str> = lines.clone();
            edited.insert(index + 1, "bogus_key = 1");
            let edited = edited.join("\n");
            let error = match Config::from_toml(&edited, "edited.toml", &Overrides::default()) {
                Ok(_) => panic!("{origin}: a stray key in [{table}] was accepted"),
                Err(error) => error.to_string(),
            };
            let expected_start = format!("edited.toml:{}: {table}", index + 2);
            assert!(
                error.starts_with(&expected_start) && error.contains("bogus_key"),
                "{origin}: [{table}]: {error}"
            );
            tables_checked += 1;
        }
    }
    assert!(tables_checked >= 16, "only {tables_checked} tables checked");
}
