//! The Corefile's syntax (CoreDNS's dialect of the Caddyfile), read into server blocks and
//! directives with the line each came from. Nothing here knows what a plugin means.
//!
//! ```text
//! # a comment
//! zone1 zone2:port {          <- a server block: its keys, then its directives
//!     plugin arg arg          <- a directive: one line
//!     plugin arg {            <- a directive with a block of options,
//!         option arg          <-   each option one line (options may have blocks too)
//!     }
//! }
//! ```
//!
//! What the Caddyfile has and the importer refuses, here, with the line: `import` (it pulls in
//! other files, which the importer does not read) and environment variables (`{$VAR}`, whose
//! values are those of CoreDNS's process, not the importer's).

use super::{CorefileError, ErrorKind};

/// One word of the Corefile, with its line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub line: usize,
    /// Written in double quotes: never a brace, whatever its text.
    pub quoted: bool,
}

impl Token {
    fn is(&self, text: &str) -> bool {
        !self.quoted && self.text == text
    }
}

/// `keys { directives }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBlock {
    /// `zone`, `zone:port`, `dns://zone:port`, as written (commas removed).
    pub keys: Vec<Token>,
    pub line: usize,
    pub directives: Vec<Directive>,
}

/// A directive (a plugin) or one option line inside a directive's block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub name: String,
    pub line: usize,
    pub args: Vec<Token>,
    /// The option lines of `{ ... }` after the arguments, if any.
    pub block: Vec<Directive>,
    /// Whether a `{ ... }` followed, even an empty one.
    pub has_block: bool,
}

impl Directive {
    /// The arguments' texts.
    pub fn arg_texts(&self) -> Vec<&str> {
        self.args.iter().map(|a| a.text.as_str()).collect()
    }

    /// The directive as text without its lines (`cache 30 { denial 9984 30; }`), to compare
    /// two blocks' settings and to quote an option in a comment.
    pub fn normalized(&self) -> String {
        let mut text = self.name.clone();
        for arg in &self.args {
            text.push(' ');
            text.push_str(&arg.text);
        }
        if self.has_block {
            text.push_str(" {");
            for option in &self.block {
                text.push(' ');
                text.push_str(&option.normalized());
                text.push(';');
            }
            text.push_str(" }");
        }
        text
    }
}

/// Reads a whole Corefile.
pub fn parse(text: &str) -> Result<Vec<ServerBlock>, CorefileError> {
    let tokens = tokenize(text)?;
    let mut parser = Parser {
        tokens,
        position: 0,
    };
    let mut blocks = Vec::new();
    while let Some(first) = parser.peek().cloned() {
        if first.is("import") {
            return Err(CorefileError::new(first.line, ErrorKind::Import));
        }
        let mut keys = Vec::new();
        // A key list continues onto the next line only after a trailing comma.
        let mut continues = true;
        let mut last_line = first.line;
        loop {
            let Some(token) = parser.next() else {
                return Err(CorefileError::syntax(
                    first.line,
                    "server block keys with no `{` after them",
                ));
            };
            if token.is("{") {
                break;
            }
            if token.is("}") {
                return Err(CorefileError::syntax(token.line, "`}` with no `{` open"));
            }
            if token.line != last_line && !continues {
                return Err(CorefileError::syntax(
                    last_line,
                    "server block keys must be followed by `{` on the same line",
                ));
            }
            continues = token.text.ends_with(',');
            last_line = token.line;
            keys.extend(
                token
                    .text
                    .split(',')
                    .filter(|part| !part.is_empty())
                    .map(|part| Token {
                        text: part.to_owned(),
                        line: token.line,
                        quoted: token.quoted,
                    }),
            );
        }
        if keys.is_empty() {
            return Err(CorefileError::syntax(
                first.line,
                "a server block needs at least one zone before `{`",
            ));
        }
        let directives = parser.body(first.line)?;
        blocks.push(ServerBlock {
            keys,
            line: first.line,
            directives,
        });
    }
    Ok(blocks)
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    /// Directives up to the `}` that closes the block opened on `opened`.
    fn body(&mut self, opened: usize) -> Result<Vec<Directive>, CorefileError> {
        let mut directives = Vec::new();
        loop {
            let Some(name) = self.next() else {
                return Err(CorefileError::syntax(
                    opened,
                    "this `{` is never closed with `}`",
                ));
            };
            if name.is("}") {
                return Ok(directives);
            }
            if name.is("{") {
                return Err(CorefileError::syntax(
                    name.line,
                    "`{` must follow a directive's name or arguments on their line",
                ));
            }
            if name.is("import") {
                return Err(CorefileError::new(name.line, ErrorKind::Import));
            }
            let mut args = Vec::new();
            let mut block = Vec::new();
            let mut has_block = false;
            while let Some(next) = self.peek() {
                if next.line != name.line || next.is("}") {
                    break;
                }
                let next = self.next().expect("peeked");
                if next.is("{") {
                    has_block = true;
                    block = self.body(next.line)?;
                    break;
                }
                args.push(next);
            }
            directives.push(Directive {
                name: name.text,
                line: name.line,
                args,
                block,
                has_block,
            });
        }
    }
}

/// Splits the text into words, braces and quoted strings; drops comments.
fn tokenize(text: &str) -> Result<Vec<Token>, CorefileError> {
    let mut tokens = Vec::new();
    for (index, line_text) in text.lines().enumerate() {
        let line = index + 1;
        let mut chars = line_text.chars().peekable();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                chars.next();
                continue;
            }
            if c == '#' {
                break;
            }
            if c == '"' {
                chars.next();
                let mut word = String::new();
                let mut closed = false;
                while let Some(c) = chars.next() {
                    match c {
                        '\\' if chars.peek() == Some(&'"') => {
                            chars.next();
                            word.push('"');
                        }
                        '"' => {
                            closed = true;
                            break;
                        }
                        c => word.push(c),
                    }
                }
                if !closed {
                    return Err(CorefileError::syntax(
                        line,
                        "a quoted string is not closed on its line",
                    ));
                }
                check_environment(&word, line)?;
                tokens.push(Token {
                    text: word,
                    line,
                    quoted: true,
                });
                continue;
            }
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
            check_environment(&word, line)?;
            tokens.push(Token {
                text: word,
                line,
                quoted: false,
            });
        }
    }
    Ok(tokens)
}

/// `{$VAR}` and `{%VAR%}` are replaced by CoreDNS from its own environment.
fn check_environment(word: &str, line: usize) -> Result<(), CorefileError> {
    if word.contains("{$") || (word.contains("{%") && word.contains("%}")) {
        return Err(CorefileError::new(
            line,
            ErrorKind::Environment(word.to_owned()),
        ));
    }
    Ok(())
}
