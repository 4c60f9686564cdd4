//! Reading the cluster's objects from manifests: the YAML or JSON that `kubectl get -o yaml` and
//! `kubectl create --dry-run=client -o yaml` print, and that `kubectl apply -f` reads.
//!
//! A file holds one object, several YAML documents separated by `---`, or a list: `kind: List`
//! (what `kubectl get svc,endpointslices,pods -A -o yaml` prints, items of mixed kinds, each
//! naming its own `kind`) or a typed list such as `ServiceList` (what the API itself serves,
//! whose items may omit `kind` and `apiVersion`).
//!
//! A broken document is reported as a [`ManifestProblem`] naming the file and, when known, the
//! line, and the rest of the file and directory still loads: one typo in one manifest must not
//! take the whole cluster zone down. Objects of kinds that play no part in DNS (Deployments,
//! ConfigMaps, ...) are skipped, so a directory of ordinary application manifests can be used as
//! it is.
//!
//! Objects are checked by `k8s-openapi`'s own deserializers, which also check `apiVersion`: an
//! EndpointSlice must be `discovery.k8s.io/v1`, as served since Kubernetes 1.21.

use std::fmt;
use std::fs;
use std::path::Path;

use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{Metadata, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The objects the cluster zone is built from, as the Kubernetes API serves them.
#[derive(Clone, Debug, Default)]
pub struct ClusterObjects {
    pub services: Vec<Service>,
    pub endpoint_slices: Vec<EndpointSlice>,
    pub pods: Vec<Pod>,
    pub namespaces: Vec<Namespace>,
}

impl ClusterObjects {
    /// How many objects there are, all kinds together.
    pub fn len(&self) -> usize {
        self.services.len() + self.endpoint_slices.len() + self.pods.len() + self.namespaces.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A manifest problem, reported as `file:line: reason` (line when known).
#[derive(Debug, thiserror::Error)]
pub struct ManifestProblem {
    pub file: String,
    /// 1-based, in the file (not in the YAML document).
    pub line: Option<usize>,
    pub reason: String,
}

impl fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// The file name endings read by [`read_dir`].
const MANIFEST_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

/// Reads every *.yaml, *.yml, *.json file in `dir` (not recursive, sorted by name).
///
/// Names starting with `.` are skipped: a ConfigMap mounted as a volume holds its files twice,
/// once through the `..data` link and once in a hidden timestamped directory, and editors leave
/// hidden swap files. Symbolic links are followed, which is how the mounted files appear.
///
/// `Err` only when the directory itself cannot be read; an unreadable file or a broken document
/// is one of the problems returned beside the objects.
pub fn read_dir(dir: &Path) -> Result<(ClusterObjects, Vec<ManifestProblem>), ManifestProblem> {
    let entries = fs::read_dir(dir).map_err(|error| ManifestProblem {
        file: dir.display().to_string(),
        line: None,
        reason: format!("cannot read the directory: {error}"),
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|error| ManifestProblem {
            file: dir.display().to_string(),
            line: None,
            reason: format!("cannot list the directory: {error}"),
        })?;
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            tracing::debug!(file = ?entry.path(), "skipped: the file name is not UTF-8");
            continue;
        };
        let is_manifest = !file_name.starts_with('.')
            && Path::new(file_name)
                .extension()
                .and_then(|extension| extension.to_str())
                .is_some_and(|extension| {
                    MANIFEST_EXTENSIONS
                        .iter()
                        .any(|known| extension.eq_ignore_ascii_case(known))
                });
        // `fs::metadata` follows links, so a link to a file counts as a file.
        if is_manifest && fs::metadata(entry.path()).is_ok_and(|metadata| metadata.is_file()) {
            paths.push(entry.path());
        }
    }
    paths.sort();

    let mut objects = ClusterObjects::default();
    let mut problems = Vec::new();
    for path in paths {
        let file = path.display().to_string();
        match fs::read(&path) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => problems.extend(parse_manifest(&text, &file, &mut objects)),
                Err(_) => problems.push(ManifestProblem {
                    file,
                    line: None,
                    reason: "the file is not UTF-8 text".to_string(),
                }),
            },
            Err(error) => problems.push(ManifestProblem {
                file,
                line: None,
                reason: format!("cannot read the file: {error}"),
            }),
        }
    }
    Ok((objects, problems))
}

/// Reads one manifest file's text into `into`, and returns what could not be read. JSON when the
/// text starts with `{` (as `kubectl -o json` prints), YAML otherwise. `file` only names the file
/// in problems.
pub fn parse_manifest(text: &str, file: &str, into: &mut ClusterObjects) -> Vec<ManifestProblem> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = Reader {
        file,
        into,
        problems: Vec::new(),
    };
    if text.trim_start().starts_with('{') {
        reader.json(text);
    } else {
        for document in yaml_documents(text) {
            reader.yaml(document);
        }
    }
    reader.problems
}

/// One YAML document of a file.
struct YamlDocument<'a> {
    /// The document's text, from its `---` line (if any) to the next one.
    text: &'a str,
    /// The 0-based line of the file where `text` starts: how many lines come before it. Each
    /// document is parsed alone, so the parser's line numbers are moved down by this much.
    first_line: usize,
    /// The 1-based line of the document's first content, for problems that have no line of
    /// their own.
    content_line: Option<usize>,
}

/// Splits a YAML stream where a line starts with the document marker `---` (YAML 1.2 §9.1.2:
/// the marker is three dashes at the start of a line, followed by white space or the line end;
/// it cannot occur inside a document's content). Splitting here rather than in the YAML parser
/// lets the documents after a broken one still load: libyaml stops at the first error.
fn yaml_documents(text: &str) -> Vec<YamlDocument<'_>> {
    let mut documents = Vec::new();
    let mut start = 0;
    let mut first_line = 0;
    let mut content_line = None;
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches(['\n', '\r']);
        let is_marker = bare
            .strip_prefix("---")
            .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t']));
        if is_marker && offset > start {
            documents.push(YamlDocument {
                text: &text[start..offset],
                first_line,
                content_line,
            });
            start = offset;
            first_line = index;
            content_line = None;
        }
        let content = if is_marker { &bare[3..] } else { bare };
        let content = content.trim();
        if content_line.is_none()
            && !content.is_empty()
            && !content.starts_with('#')
            && content != "..."
        {
            content_line = Some(index + 1);
        }
        offset += line.len();
    }
    if offset > start {
        documents.push(YamlDocument {
            text: &text[start..],
            first_line,
            content_line,
        });
    }
    documents
}

/// The kinds read, each with the Rust type `k8s-openapi` gives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Service,
    EndpointSlice,
    Pod,
    Namespace,
}

impl Kind {
    fn from_name(kind: &str) -> Option<Self> {
        match kind {
            "Service" => Some(Self::Service),
            "EndpointSlice" => Some(Self::EndpointSlice),
            "Pod" => Some(Self::Pod),
            "Namespace" => Some(Self::Namespace),
            _ => None,
        }
    }

    /// The `apiVersion` `k8s-openapi` reads this kind in.
    fn api_version(self) -> &'static str {
        match self {
            Self::Service => <Service as Resource>::API_VERSION,
            Self::EndpointSlice => <EndpointSlice as Resource>::API_VERSION,
            Self::Pod => <Pod as Resource>::API_VERSION,
            Self::Namespace => <Namespace as Resource>::API_VERSION,
        }
    }

    /// Whether objects of this kind live in a namespace (and so must name it).
    fn is_namespaced(self) -> bool {
        self != Self::Namespace
    }
}

/// Where a document's text came from, to find the line of a problem found after parsing.
enum Origin<'a> {
    Yaml(&'a YamlDocument<'a>),
    Json(&'a str),
}

impl Origin<'_> {
    /// Deserializes the document's text again as `T`, only to learn where it fails: a
    /// [`serde_json::Value`] has forgotten its lines.
    fn locate<T: DeserializeOwned>(&self) -> Option<(Option<usize>, String)> {
        match self {
            Origin::Yaml(document) => {
                let deserializer = serde_yaml::Deserializer::from_str(document.text);
                serde_path_to_error::deserialize::<_, T>(deserializer)
                    .err()
                    // serde_yaml's message names the path itself.
                    .map(|error| yaml_reason(error.inner(), document.first_line))
            }
            Origin::Json(text) => {
                let mut deserializer = serde_json::Deserializer::from_str(text);
                serde_path_to_error::deserialize::<_, T>(&mut deserializer)
                    .err()
                    .map(|error| {
                        let path = error.path().to_string();
                        let (line, reason) = json_reason(error.inner());
                        (line, with_path(&path, reason))
                    })
            }
        }
    }

    fn content_line(&self) -> Option<usize> {
        match self {
            Origin::Yaml(document) => document.content_line,
            Origin::Json(text) => text
                .lines()
                .position(|line| !line.trim().is_empty())
                .map(|index| index + 1),
        }
    }
}

struct Reader<'a> {
    file: &'a str,
    into: &'a mut ClusterObjects,
    problems: Vec<ManifestProblem>,
}

impl Reader<'_> {
    fn problem(&mut self, line: Option<usize>, reason: String) {
        self.problems.push(ManifestProblem {
            file: self.file.to_string(),
            line,
            reason,
        });
    }

    fn json(&mut self, text: &str) {
        match serde_json::from_str::<Value>(text) {
            Ok(value) => self.document(value, &Origin::Json(text)),
            Err(error) => {
                let (line, reason) = json_reason(&error);
                self.problem(line, reason);
            }
        }
    }

    fn yaml(&mut self, document: YamlDocument<'_>) {
        if document.content_line.is_none() {
            return; // only comments, blank lines and markers
        }
        match serde_yaml::from_str::<Value>(document.text) {
            Ok(value) => self.document(value, &Origin::Yaml(&document)),
            Err(error) => {
                let (line, reason) = yaml_reason(&error, document.first_line);
                self.problem(line.or(document.content_line), reason);
            }
        }
    }

    /// One parsed document: an object or a list of them.
    fn document(&mut self, value: Value, origin: &Origin<'_>) {
        let line = origin.content_line();
        let kind = match &value {
            Value::Null => return,
            Value::Object(map) => map.get("kind").and_then(Value::as_str).map(str::to_owned),
            _ => {
                self.problem(line, "expected a Kubernetes object, a mapping".to_string());
                return;
            }
        };
        let Some(kind) = kind else {
            self.problem(line, "the object has no `kind`".to_string());
            return;
        };
        if let Some(item_kind) = kind.strip_suffix("List") {
            self.list(value, item_kind, line);
        } else {
            self.object(value, &kind, None, line, Some(origin));
        }
    }

    /// `kind: List` (items name their kind) or `<Kind>List` (items may not).
    fn list(&mut self, mut value: Value, item_kind: &str, line: Option<usize>) {
        let items = match value.get_mut("items").map(Value::take) {
            Some(Value::Array(items)) => items,
            Some(Value::Null) | None => Vec::new(), // `items: null` is how an empty list prints
            Some(_) => {
                self.problem(line, "`items` is not a list".to_string());
                return;
            }
        };
        for (index, item) in items.into_iter().enumerate() {
            let kind = match item.get("kind").and_then(Value::as_str) {
                Some(kind) => kind.to_owned(),
                None if !item_kind.is_empty() => item_kind.to_owned(),
                None => {
                    self.problem(line, format!("items[{index}] has no `kind`"));
                    continue;
                }
            };
            self.object(item, &kind, Some(index), line, None);
        }
    }

    /// One object. `origin` is given for a whole document, to find the line of a problem; list
    /// items are reported with the list's line and their index.
    fn object(
        &mut self,
        value: Value,
        kind_name: &str,
        index: Option<usize>,
        line: Option<usize>,
        origin: Option<&Origin<'_>>,
    ) {
        let Some(kind) = Kind::from_name(kind_name) else {
            tracing::debug!(
                file = self.file,
                kind = kind_name,
                "skipped: not a kind the cluster zone is built from"
            );
            return;
        };
        let label = object_label(&value, kind_name, index);
        // Said here because the deserializer's own message would not name the field.
        if let Some(version) = value.get("apiVersion").and_then(Value::as_str) {
            if version != kind.api_version() {
                let expected = kind.api_version();
                let reason = format!("{label}: `apiVersion: {version}`, expected `{expected}`");
                self.problem(line, reason);
                return;
            }
        }
        match kind {
            Kind::Service => {
                let read = self.read(value, kind, &label, line, origin);
                self.into.services.extend(read);
            }
            Kind::EndpointSlice => {
                let read = self.read(value, kind, &label, line, origin);
                self.into.endpoint_slices.extend(read);
            }
            Kind::Pod => {
                let read = self.read(value, kind, &label, line, origin);
                self.into.pods.extend(read);
            }
            Kind::Namespace => {
                let read = self.read(value, kind, &label, line, origin);
                self.into.namespaces.extend(read);
            }
        }
    }

    /// `value` as a `T` that names itself well enough to be placed in DNS, or None after
    /// recording why not.
    fn read<T: DeserializeOwned + Metadata<Ty = ObjectMeta>>(
        &mut self,
        value: Value,
        kind: Kind,
        label: &str,
        line: Option<usize>,
        origin: Option<&Origin<'_>>,
    ) -> Option<T> {
        match self.typed::<T>(value, origin) {
            Ok(object) => match missing_identity(object.metadata(), kind) {
                Some(reason) => {
                    self.problem(line, format!("{label}: {reason}"));
                    None
                }
                None => Some(object),
            },
            Err((error_line, reason)) => {
                self.problem(error_line.or(line), format!("{label}: {reason}"));
                None
            }
        }
    }

    /// `value` as a `T`, or the line (when known) and reason it is not one.
    fn typed<T: DeserializeOwned>(
        &self,
        value: Value,
        origin: Option<&Origin<'_>>,
    ) -> Result<T, (Option<usize>, String)> {
        serde_path_to_error::deserialize::<_, T>(value).map_err(|error| {
            origin
                .and_then(Origin::locate::<T>)
                .unwrap_or_else(|| (None, with_path(&error.path().to_string(), error.inner())))
        })
    }
}

/// Why an object cannot be placed in DNS without guessing: no name, or (for namespaced kinds) no
/// namespace. A manifest without a namespace goes wherever `kubectl apply -n` sends it, so
/// taking it as `default` would be a guess, and a wrong guess publishes names in the wrong place.
fn missing_identity(metadata: &ObjectMeta, kind: Kind) -> Option<String> {
    if metadata.name.as_deref().is_none_or(str::is_empty) {
        Some("no `metadata.name`".to_string())
    } else if kind.is_namespaced() && metadata.namespace.as_deref().is_none_or(str::is_empty) {
        Some("no `metadata.namespace`; it is not guessed, add `namespace:`".to_string())
    } else {
        None
    }
}

/// `Service ns/name` or `items[3] (Service ns/name)`, to say which object a problem is about.
fn object_label(value: &Value, kind: &str, index: Option<usize>) -> String {
    let metadata = value.get("metadata");
    let field = |key: &str| metadata.and_then(|m| m.get(key)).and_then(Value::as_str);
    let object = match (field("namespace"), field("name")) {
        (Some(namespace), Some(name)) => format!("{kind} {namespace}/{name}"),
        (None, Some(name)) => format!("{kind} {name}"),
        _ => kind.to_string(),
    };
    match index {
        Some(index) => format!("items[{index}] ({object})"),
        None => object,
    }
}

fn with_path(path: &str, reason: impl fmt::Display) -> String {
    if path.is_empty() || path == "." {
        reason.to_string()
    } else {
        format!("{path}: {reason}")
    }
}

/// A YAML error's line in the file and its message without the position (the line goes in the
/// problem). `offset` is the number of lines before the document, which was parsed alone.
fn yaml_reason(error: &serde_yaml::Error, offset: usize) -> (Option<usize>, String) {
    let message = shift_lines(&error.to_string(), offset);
    match error.location() {
        Some(location) => {
            let line = location.line() + offset;
            (
                Some(line),
                without_position(&message, line, location.column()),
            )
        }
        None => (None, message),
    }
}

/// `message` with every `line N column` (libyaml names a context position too) moved down by
/// `offset` lines, so that it counts in the file rather than in the document.
fn shift_lines(message: &str, offset: usize) -> String {
    const LINE: &str = "line ";
    let mut shifted = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find(LINE) {
        let (before, after) = rest.split_at(at + LINE.len());
        shifted.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        let number = after[..digits].parse::<usize>();
        match number {
            Ok(number) if after[digits..].starts_with(" column") => {
                shifted.push_str(&(number + offset).to_string());
            }
            _ => shifted.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    shifted.push_str(rest);
    shifted
}

/// A JSON error's line and its message without the position.
fn json_reason(error: &serde_json::Error) -> (Option<usize>, String) {
    let message = error.to_string();
    if error.line() == 0 {
        return (None, message);
    }
    (
        Some(error.line()),
        without_position(&message, error.line(), error.column()),
    )
}

/// `message` with its ` at line L column C` replaced by `, column C`.
fn without_position(message: &str, line: usize, column: usize) -> String {
    let position = format!(" at line {line} column {column}");
    if message.contains(&position) {
        message.replacen(&position, &format!(" (column {column})"), 1)
    } else {
        message.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn data(dir: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/kubernetes")
            .join(dir)
    }

    fn names(objects: &ClusterObjects) -> Vec<String> {
        let key = |kind: &str, metadata: &ObjectMeta| {
            format!(
                "{kind} {}/{}",
                metadata.namespace.as_deref().unwrap_or(""),
                metadata.name.as_deref().unwrap_or("")
            )
        };
        let mut names: Vec<String> = objects
            .services
            .iter()
            .map(|o| key("Service", &o.metadata))
            .chain(
                objects
                    .endpoint_slices
                    .iter()
                    .map(|o| key("EndpointSlice", &o.metadata)),
            )
            .chain(objects.pods.iter().map(|o| key("Pod", &o.metadata)))
            .chain(
                objects
                    .namespaces
                    .iter()
                    .map(|o| key("Namespace", &o.metadata)),
            )
            .collect();
        names.sort();
        names
    }

    /// The example cluster of the checklist, in every shape a manifest comes in.
    const EXAMPLE_OBJECTS: &[&str] = &[
        "EndpointSlice ns/hdls-7k2xq",
        "EndpointSlice ns/subdomain-p9x4d",
        "Namespace /default",
        "Namespace /ns",
        "Pod ns/busybox-1",
        "Pod ns/hdls-5d8f7",
        "Pod ns/my-pet",
        "Service default/kubernetes",
        "Service ns/ext",
        "Service ns/hdls",
        "Service ns/subdomain",
    ];

    #[test]
    fn reads_every_form_in_a_directory() {
        // One object per file (kubectl create --dry-run output, YAML and JSON), `---` documents,
        // a PodList and a NamespaceList as the API serves them (items without `kind`).
        let (objects, problems) = read_dir(&data("example")).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(names(&objects), EXAMPLE_OBJECTS);
    }

    #[test]
    fn reads_a_kubectl_get_list() {
        // `kubectl get ns,svc,endpointslices,pods -A -o yaml`: one `kind: List` of mixed kinds.
        let (objects, problems) = read_dir(&data("list")).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(names(&objects), EXAMPLE_OBJECTS);
    }

    #[test]
    fn shipped_example_cluster_reads_cleanly() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("zones/cluster");
        let (objects, problems) = read_dir(&dir).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(names(&objects), EXAMPLE_OBJECTS);
    }

    #[test]
    fn a_broken_document_is_reported_and_the_rest_loads() {
        let (objects, problems) = read_dir(&data("broken")).unwrap();
        let problems: Vec<String> = problems
            .iter()
            .map(|problem| {
                // The directory differs between machines; keep the file name.
                let name = Path::new(&problem.file).file_name().unwrap();
                format!("{}:{:?}", name.to_string_lossy(), problem.line)
            })
            .collect();
        assert_eq!(
            problems,
            [
                "services.yaml:Some(19)", // bad indentation in the second document
                "services.yaml:Some(37)", // port: https is not a number
                "services.yaml:Some(40)", // no namespace: the document's first line
                "slices.json:Some(5)",    // a missing comma, found at the next key
            ]
        );
        // The documents before and after the broken ones; the ConfigMap and notes.txt ignored.
        assert_eq!(
            names(&objects),
            ["Service default/first", "Service default/last"]
        );
    }

    #[test]
    fn problems_read_as_file_line_reason() {
        let mut objects = ClusterObjects::default();
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  namespace: default\nspec:\n  ports:\n  - port: https\n";
        let problems = parse_manifest(text, "svc.yaml", &mut objects);
        assert_eq!(problems.len(), 1);
        let shown = problems[0].to_string();
        assert!(
            shown.starts_with("svc.yaml:8: Service default/a: spec.ports[0].port: invalid type"),
            "{shown}"
        );
        let without_line = ManifestProblem {
            file: "dir".to_string(),
            line: None,
            reason: "cannot read".to_string(),
        };
        assert_eq!(without_line.to_string(), "dir: cannot read");
    }

    #[test]
    fn list_items_are_reported_by_index() {
        let mut objects = ClusterObjects::default();
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a, namespace: x}\n- apiVersion: v2\n  kind: Service\n  metadata: {name: b, namespace: x}\n- {kind: Pod, apiVersion: v1, metadata: {name: p}}\n";
        let problems = parse_manifest(text, "list.yaml", &mut objects);
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 2, "{shown:?}");
        assert_eq!(
            shown[0],
            "list.yaml:1: items[1] (Service x/b): `apiVersion: v2`, expected `v1`"
        );
        assert!(shown[1].starts_with("list.yaml:1: items[2] (Pod p): no `metadata.namespace`"));
        assert_eq!(objects.services.len(), 1);
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let inputs = [
            "",
            "---",
            "--- \n...\n",
            "# only a comment\n",
            "- a\n- b\n",
            "kind: 3\n",
            "just text",
            "{",
            "[1, 2]",
            "kind: List\nitems: 3\n",
            "kind: List\nitems:\n- 3\n- {}\n",
            "kind: ServiceList\nitems:\n- metadata: {name: a, namespace: b}\n  spec: {clusterIP: None}\n",
            "kind: PodList\nitems: null\n",
            "\u{feff}kind: Namespace\nmetadata: {name: a}\n",
            "kind: Service\nmetadata: {name: a, namespace: b}\nspec: {ports: [{port: 99999999999}]}\n",
            "---\n---\n---x\n",
            "a: &x [*x]\n",
        ];
        for input in inputs {
            let mut objects = ClusterObjects::default();
            let _ = parse_manifest(input, "odd.yaml", &mut objects);
        }
        let mut objects = ClusterObjects::default();
        let problems = parse_manifest(inputs[11], "list.yaml", &mut objects);
        assert!(problems.is_empty());
        assert_eq!(objects.services.len(), 1);
    }

    #[test]
    fn yaml_positions_count_in_the_file() {
        let mut objects = ClusterObjects::default();
        let text = "kind: Namespace\napiVersion: v1\nmetadata: {name: a}\n---\nkind: Namespace\nmetadata:\n  name: [b\n";
        let problems = parse_manifest(text, "ns.yaml", &mut objects);
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["ns.yaml:8: did not find expected ',' or ']' (column 1), while parsing a flow sequence at line 7 column 9"]
        );
        assert_eq!(
            shift_lines("at line 3 column 4, line 9", 10),
            "at line 13 column 4, line 9"
        );
    }

    #[test]
    fn an_unreadable_directory_is_an_error() {
        let missing = data("no-such-directory");
        let error = read_dir(&missing).unwrap_err();
        assert_eq!(error.line, None);
        assert!(error.to_string().contains("cannot read the directory"));
    }

    #[test]
    fn non_utf8_files_and_hidden_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("bad.yaml"), [0xff, 0xfe, 0x00]).unwrap();
        fs::write(
            dir.path().join(".hidden.yaml"),
            "kind: Namespace\nmetadata: {name: hidden}\n",
        )
        .unwrap();
        fs::write(
            dir.path().join("NS.YML"),
            "kind: Namespace\napiVersion: v1\nmetadata: {name: shown}\n",
        )
        .unwrap();
        let (objects, problems) = read_dir(dir.path()).unwrap();
        assert_eq!(problems.len(), 1);
        assert!(problems[0].reason.contains("not UTF-8"));
        assert_eq!(names(&objects), ["Namespace /shown"]);
    }
}
