//! `config`: configuration text (the input as lossy UTF-8) through the loader `hearth serve`
//! and `hearth check` use ([`Config::from_toml`]: the toml parse, every table of the server
//! and of each source, the order), and the nsswitch.conf reader ([`parse_nsswitch`]) on the
//! same text.
//!
//! An input that sets `resolve.nsswitch` is not loaded: that key names a file to read, and the
//! fuzzer is not to read the machine's files. (The reader of that file's text is fuzzed
//! directly instead.)
//!
//! Checked: no panic, no hang; a refusal names the file given; an accepted configuration has an
//! order and a listen address, and every source in the order is configured.

use hearth::chain::order::parse_nsswitch;
use hearth::config::{Config, Overrides};

/// The name the text goes by in errors.
const FILE: &str = "fuzz.toml";

fn names_a_file(text: &str) -> bool {
    let Ok(table) = text.parse::<toml::Table>() else {
        return false;
    };
    table
        .get("resolve")
        .and_then(|resolve| resolve.as_table())
        .is_some_and(|resolve| resolve.contains_key("nsswitch"))
}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = parse_nsswitch(&text, "nsswitch.conf", &["files", "zones", "dns"]);
    if names_a_file(&text) {
        return;
    }
    match Config::from_toml(&text, FILE, &Overrides::default()) {
        Err(error) => {
            let message = error.to_string();
            assert!(
                message.starts_with(FILE),
                "an error that does not name the file: {message}"
            );
        }
        Ok(config) => {
            assert!(!config.order.is_empty(), "an accepted config with no order");
            assert!(
                !config.server.listen.is_empty(),
                "an accepted config with no listen address"
            );
            for entry in &config.order {
                assert!(
                    config.source_named(&entry.source).is_some(),
                    "{} is in the order and not configured",
                    entry.source
                );
            }
        }
    }
}
