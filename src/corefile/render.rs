//! The translated configuration ([`Plan`]: tables, keys, values and their comments) and its
//! rendering as TOML text. Values go through `toml::Value`, so strings are always quoted and
//! escaped as TOML wants.

/// The order tables are written in: the order of the README's configuration reference.
const TABLE_ORDER: [&str; 10] = [
    "server",
    "access",
    "resolve",
    "files",
    "kubernetes",
    "forward",
    "forward.zone",
    "cache",
    "admin",
    "log",
];

/// Comment lines are wrapped at this width, as the shipped configuration is.
const WIDTH: usize = 100;

/// A configuration being built: the translation adds to it, [`render`] writes it.
#[derive(Debug, Default)]
pub struct Plan {
    /// Comments at the top: the source, and what was dropped.
    pub header: Vec<String>,
    tables: Vec<Table>,
    /// The inline `hosts` entries as a hosts(5) file, if any.
    pub inline_hosts: Option<String>,
}

#[derive(Debug)]
struct Table {
    name: String,
    /// `[[name]]`: one of several.
    array: bool,
    comments: Vec<String>,
    entries: Vec<Entry>,
}

#[derive(Debug)]
struct Entry {
    key: String,
    value: toml::Value,
    comments: Vec<String>,
}

impl Plan {
    fn table_mut(&mut self, name: &str) -> &mut Table {
        let index = match self
            .tables
            .iter()
            .position(|table| table.name == name && !table.array)
        {
            Some(index) => index,
            None => {
                self.tables.push(Table {
                    name: name.to_owned(),
                    array: false,
                    comments: Vec::new(),
                    entries: Vec::new(),
                });
                self.tables.len() - 1
            }
        };
        &mut self.tables[index]
    }

    /// Sets `table.key`, with a comment above it; a second set of the same key replaces the
    /// value and keeps both comments.
    pub fn set(
        &mut self,
        table: &str,
        key: &str,
        value: impl Into<toml::Value>,
        comment: impl Into<String>,
    ) {
        let value = value.into();
        let comment = comment.into();
        let table = self.table_mut(table);
        if let Some(entry) = table.entries.iter_mut().find(|entry| entry.key == key) {
            entry.value = value;
            entry.comments.push(comment);
        } else {
            table.entries.push(Entry {
                key: key.to_owned(),
                value,
                comments: vec![comment],
            });
        }
    }

    /// Whether `table.key` has been set.
    pub fn has(&self, table: &str, key: &str) -> bool {
        self.tables
            .iter()
            .any(|t| t.name == table && t.entries.iter().any(|entry| entry.key == key))
    }

    /// A comment above a table's header (the table is written even with no keys).
    pub fn note(&mut self, table: &str, comment: impl Into<String>) {
        self.table_mut(table).comments.push(comment.into());
    }

    /// Starts a new `[[name]]` table; `set_last` fills it.
    pub fn push_array(&mut self, name: &str, comment: impl Into<String>) {
        self.tables.push(Table {
            name: name.to_owned(),
            array: true,
            comments: vec![comment.into()],
            entries: Vec::new(),
        });
    }

    /// Sets a key of the last `[[name]]` table.
    pub fn set_last(&mut self, name: &str, key: &str, value: impl Into<toml::Value>) {
        if let Some(table) = self
            .tables
            .iter_mut()
            .rev()
            .find(|table| table.name == name && table.array)
        {
            table.entries.push(Entry {
                key: key.to_owned(),
                value: value.into(),
                comments: Vec::new(),
            });
        }
    }
}

/// The configuration as TOML text.
pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    for line in &plan.header {
        comment(&mut out, line);
    }
    for name in TABLE_ORDER {
        for table in plan.tables.iter().filter(|table| table.name == name) {
            out.push('\n');
            for line in &table.comments {
                comment(&mut out, line);
            }
            if table.array {
                out.push_str(&format!("[[{name}]]\n"));
            } else {
                out.push_str(&format!("[{name}]\n"));
            }
            for entry in &table.entries {
                for line in &entry.comments {
                    comment(&mut out, line);
                }
                out.push_str(&format!("{} = {}\n", entry.key, entry.value));
            }
        }
    }
    out
}

/// Writes `text` as `#` lines, wrapped at [`WIDTH`].
fn comment(out: &mut String, text: &str) {
    if text.is_empty() {
        return;
    }
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > WIDTH && line.len() > 1 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}
