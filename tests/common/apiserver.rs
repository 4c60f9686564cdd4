//! A Kubernetes API server on loopback: just enough of one for the real `kube` client to list
//! and watch Services, EndpointSlices, Namespaces and Pods, and a test to make it misbehave the
//! way real API servers do.
//!
//! - Objects are kept in the API's own JSON; each change takes the next `resourceVersion` and
//!   is recorded as a watch event (`ADDED`, `MODIFIED`, `DELETED`).
//! - `GET <collection>` lists: `{"kind": "ServiceList", "metadata": {"resourceVersion"}, ...}`,
//!   in pages when asked for a `limit` (with `continue` tokens).
//! - `GET <collection>?watch=true&resourceVersion=N` answers a chunked stream of
//!   newline-delimited events: first every recorded event after N, then each change as it
//!   happens. A resourceVersion older than the history kept gets an `ERROR` event with a
//!   `410 Gone` Status, as the API server's watch cache answers.
//! - Misbehaviour on demand: cut every watch stream, compact the history, expire watches
//!   (ERROR 410) or answer them HTTP 410, send BOOKMARKs, hold lists, stop accepting
//!   connections and come back.
//!
//! HTTP/1.1 by hand over tokio: one request per connection (`Connection: close`), so cutting a
//! stream is closing its socket.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

/// The collections served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resource {
    Services,
    EndpointSlices,
    Namespaces,
    Pods,
}

impl Resource {
    pub const ALL: [Resource; 4] = [
        Resource::Services,
        Resource::EndpointSlices,
        Resource::Namespaces,
        Resource::Pods,
    ];

    fn path(self) -> &'static str {
        match self {
            Resource::Services => "/api/v1/services",
            Resource::EndpointSlices => "/apis/discovery.k8s.io/v1/endpointslices",
            Resource::Namespaces => "/api/v1/namespaces",
            Resource::Pods => "/api/v1/pods",
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Resource::Services => "Service",
            Resource::EndpointSlices => "EndpointSlice",
            Resource::Namespaces => "Namespace",
            Resource::Pods => "Pod",
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Resource::EndpointSlices => "discovery.k8s.io/v1",
            _ => "v1",
        }
    }

    fn from_path(path: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|resource| resource.path() == path)
    }

    pub fn of_kind(kind: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|resource| resource.kind() == kind)
    }
}

/// What open watch streams are told.
#[derive(Clone, Debug)]
enum Signal {
    /// A recorded event, as its line.
    Event(Resource, Arc<str>),
    /// Send a BOOKMARK at the current resourceVersion.
    Bookmark,
    /// Close the connection without ending the chunked body.
    Cut,
    /// Send an ERROR event (410 Gone) and end the stream.
    Expire,
}

/// An object, and its text as a list item.
type Kept = (Value, Arc<str>);

#[derive(Default)]
struct Data {
    /// The last resourceVersion given.
    revision: u64,
    /// Each object, and its text as a list item (without `kind` and `apiVersion`): written
    /// once when it changes, as the API server's watch cache keeps objects ready to send, so
    /// that serving a list of 10,000 objects is copying text rather than writing JSON
    /// (`benches/cluster_scale.sh`: writing every page anew took the bench 1.4 s of CPU
    /// during the first sync, on the two cores Hearth had too).
    objects: BTreeMap<Resource, BTreeMap<(String, String), Kept>>,
    /// Events after `oldest`, in order.
    history: Vec<(u64, Resource, Arc<str>)>,
    /// Watches from a resourceVersion below this are too old: 410 Gone.
    oldest: u64,
    /// Whether events reach open watches as they happen (otherwise only the history has them).
    quiet: bool,
    /// A watch from too old a resourceVersion is answered HTTP 410 rather than with an ERROR
    /// event.
    expired_as_http: bool,
    /// Lists begun (first pages) and watch requests, per collection.
    lists: HashMap<Resource, usize>,
    watches: HashMap<Resource, usize>,
}

struct Shared {
    data: Mutex<Data>,
    signals: broadcast::Sender<Signal>,
    /// Lists of these collections wait until released.
    held: watch::Sender<HashSet<Resource>>,
}

/// A fake Kubernetes API server on `127.0.0.1`.
pub struct FakeApiServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    /// Cancelled to stop accepting and close every connection.
    running: Mutex<CancellationToken>,
}

impl FakeApiServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (signals, _) = broadcast::channel(4096);
        let shared = Arc::new(Shared {
            data: Mutex::new(Data::default()),
            signals,
            held: watch::Sender::new(HashSet::new()),
        });
        let running = CancellationToken::new();
        tokio::spawn(accept(listener, Arc::clone(&shared), running.clone()));
        Self {
            addr,
            shared,
            running: Mutex::new(running),
        }
    }

    /// The URL for `kubernetes.api`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates or replaces an object given in the API's JSON (`kind`, `metadata.name`, and
    /// `metadata.namespace` unless a Namespace); records ADDED or MODIFIED.
    pub fn apply(&self, mut object: Value) {
        let kind = object["kind"]
            .as_str()
            .expect("the object has a kind")
            .to_owned();
        let resource =
            Resource::of_kind(&kind).unwrap_or_else(|| panic!("no collection for {kind}"));
        object["apiVersion"] = json!(resource.api_version());
        let key = key_of(&object);
        let mut data = self.shared.data.lock().unwrap();
        data.revision += 1;
        let revision = data.revision;
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        let item = list_item(&object);
        let previous = data
            .objects
            .entry(resource)
            .or_default()
            .insert(key, (object.clone(), item));
        let kind = if previous.is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.record(&mut data, resource, kind, object);
    }

    /// Applies every document of a YAML text (`---`-separated objects, or a `kind: List`).
    pub fn apply_yaml(&self, text: &str) {
        for document in serde_yaml::Deserializer::from_str(text) {
            let value: Value = serde::Deserialize::deserialize(document).unwrap();
            if value.is_null() {
                continue;
            }
            match value["items"].as_array() {
                Some(items) if value["kind"] == "List" => {
                    items.iter().cloned().for_each(|item| self.apply(item))
                }
                _ => self.apply(value),
            }
        }
    }

    /// Deletes an object; records DELETED (the object as last seen, at a new resourceVersion).
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) {
        let resource = Resource::of_kind(kind).unwrap();
        let mut data = self.shared.data.lock().unwrap();
        let removed = data
            .objects
            .entry(resource)
            .or_default()
            .remove(&(namespace.to_owned(), name.to_owned()));
        let Some((mut object, _)) = removed else {
            panic!("no {kind} {namespace}/{name} to delete");
        };
        data.revision += 1;
        object["metadata"]["resourceVersion"] = json!(data.revision.to_string());
        self.record(&mut data, resource, "DELETED", object);
    }

    fn record(&self, data: &mut Data, resource: Resource, kind: &str, object: Value) {
        let line: Arc<str> = Arc::from(event_line(kind, &object));
        data.history
            .push((data.revision, resource, Arc::clone(&line)));
        if !data.quiet {
            let _ = self.shared.signals.send(Signal::Event(resource, line));
        }
    }

    /// A BOOKMARK on every open watch, at the current resourceVersion.
    pub fn bookmark(&self) {
        let _ = self.shared.signals.send(Signal::Bookmark);
    }

    /// Cuts every open watch stream mid-body, as a restarting API server or a load balancer
    /// does. Watches started afterwards are served normally.
    pub fn cut_watches(&self) {
        let _ = self.shared.signals.send(Signal::Cut);
    }

    /// Forgets the history up to now (as etcd compaction does): a watch from an older
    /// resourceVersion gets 410 Gone.
    pub fn compact(&self) {
        let mut data = self.shared.data.lock().unwrap();
        data.oldest = data.revision;
        data.history.clear();
    }

    /// [`compact`](Self::compact), and every open watch gets an ERROR event (410) and ends.
    pub fn expire_watches(&self) {
        self.compact();
        let _ = self.shared.signals.send(Signal::Expire);
    }

    /// While quiet, changes are recorded but not sent to open watches (a client that fell
    /// behind); a watch started afterwards from an older resourceVersion still gets them.
    pub fn set_quiet(&self, quiet: bool) {
        self.shared.data.lock().unwrap().quiet = quiet;
    }

    /// Whether a watch from too old a resourceVersion is answered with the HTTP status 410
    /// Gone (and a Status body) rather than with an ERROR event in a 200 stream.
    pub fn set_expired_as_http(&self, as_http: bool) {
        self.shared.data.lock().unwrap().expired_as_http = as_http;
    }

    /// Lists of `resource` wait until [`release_lists`](Self::release_lists).
    pub fn hold_lists(&self, resource: Resource) {
        self.shared.held.send_modify(|held| {
            held.insert(resource);
        });
    }

    pub fn release_lists(&self, resource: Resource) {
        self.shared.held.send_modify(|held| {
            held.remove(&resource);
        });
    }

    /// Lists begun for `resource` (first pages).
    pub fn lists(&self, resource: Resource) -> usize {
        let data = self.shared.data.lock().unwrap();
        data.lists.get(&resource).copied().unwrap_or(0)
    }

    /// Watch requests for `resource`.
    pub fn watches(&self, resource: Resource) -> usize {
        let data = self.shared.data.lock().unwrap();
        data.watches.get(&resource).copied().unwrap_or(0)
    }

    /// Goes away: stops accepting connections and closes every open one.
    pub fn stop(&self) {
        self.running.lock().unwrap().cancel();
    }

    /// Comes back on the same address, with the same objects and history.
    pub async fn restart(&self) {
        let mut attempts = 0;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(error) if attempts < 50 => {
                    attempts += 1;
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("cannot listen on {} again: {error}", self.addr),
            }
        };
        let running = CancellationToken::new();
        *self.running.lock().unwrap() = running.clone();
        tokio::spawn(accept(listener, Arc::clone(&self.shared), running));
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn key_of(object: &Value) -> (String, String) {
    let metadata = &object["metadata"];
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let name = text(&metadata["name"]);
    assert!(!name.is_empty(), "the object has a metadata.name");
    (text(&metadata["namespace"]), name)
}

/// An object as a list item: without kind and apiVersion, as the API server sends them.
fn list_item(object: &Value) -> Arc<str> {
    let mut item = object.clone();
    if let Some(map) = item.as_object_mut() {
        map.remove("kind");
        map.remove("apiVersion");
    }
    Arc::from(item.to_string())
}

fn event_line(kind: &str, object: &Value) -> String {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    line
}

/// The Status of a 410 Gone, as the API server writes it.
fn gone_status(revision: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": format!("too old resource version: {revision}"),
        "reason": "Expired",
        "code": 410
    })
}

async fn accept(listener: TcpListener, shared: Arc<Shared>, running: CancellationToken) {
    loop {
        tokio::select! {
            _ = running.cancelled() => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = Arc::clone(&shared);
                let running = running.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = running.cancelled() => {}
                        _ = connection(stream, shared) => {}
                    }
                });
            }
        }
    }
}

/// One request: its path and query parameters.
struct Request {
    path: String,
    query: HashMap<String, String>,
}

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut head = Vec::new();
    let mut buffer = [0u8; 4096];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        let read = stream.read(&mut buffer).await.ok()?;
        if read == 0 || head.len() > 65_536 {
            return None;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let head = String::from_utf8(head).ok()?;
    let target = head.lines().next()?.split(' ').nth(1)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (key.to_owned(), value.to_owned())
        })
        .collect();
    Some(Request {
        path: path.to_owned(),
        query,
    })
}

async fn connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let Some(resource) = Resource::from_path(&request.path) else {
        let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": "the server could not find the requested resource"});
        respond(&mut stream, "404 Not Found", &status).await;
        return;
    };
    let watching = matches!(
        request.query.get("watch").map(String::as_str),
        Some("true" | "1")
    );
    if watching {
        serve_watch(stream, &shared, resource, &request).await;
    } else {
        serve_list(stream, &shared, resource, &request).await;
    }
}

async fn respond(stream: &mut TcpStream, status: &str, body: &Value) {
    respond_text(stream, status, &body.to_string()).await;
}

async fn respond_text(stream: &mut TcpStream, status: &str, body: &str) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn serve_list(mut stream: TcpStream, shared: &Shared, resource: Resource, request: &Request) {
    let mut held = shared.held.subscribe();
    if held
        .wait_for(|held| !held.contains(&resource))
        .await
        .is_err()
    {
        return;
    }
    let limit = request
        .query
        .get("limit")
        .and_then(|limit| limit.parse::<usize>().ok())
        .filter(|limit| *limit > 0);
    // `continue`: "<resourceVersion of the first page>-<offset>".
    let resumed = request.query.get("continue").and_then(|token| {
        let (revision, offset) = token.split_once('-')?;
        Some((revision.to_owned(), offset.parse::<usize>().ok()?))
    });
    let body = {
        let mut data = shared.data.lock().unwrap();
        if resumed.is_none() {
            *data.lists.entry(resource).or_default() += 1;
        }
        let (revision, offset) = resumed.unwrap_or_else(|| (data.revision.to_string(), 0));
        let all = data.objects.get(&resource);
        let total = all.map_or(0, BTreeMap::len);
        let end = limit.map_or(total, |limit| (offset + limit).min(total));
        let items: Vec<Arc<str>> = all
            .into_iter()
            .flat_map(|objects| objects.values())
            .skip(offset)
            .take(end.saturating_sub(offset))
            .map(|(_, item)| Arc::clone(item))
            .collect();
        let mut metadata = json!({"resourceVersion": revision});
        if end < total {
            metadata["continue"] = json!(format!("{revision}-{end}"));
            metadata["remainingItemCount"] = json!(total - end);
        }
        let mut body = format!(
            "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{metadata},\"items\":[",
            resource.kind(),
            resource.api_version()
        );
        for (at, item) in items.iter().enumerate() {
            if at > 0 {
                body.push(',');
            }
            body.push_str(item);
        }
        body.push_str("]}");
        body
    };
    respond_text(&mut stream, "200 OK", &body).await;
}

async fn write_chunk(stream: &mut TcpStream, text: &str) -> bool {
    let chunk = format!("{:x}\r\n{text}\r\n", text.len());
    stream.write_all(chunk.as_bytes()).await.is_ok()
}

/// What a watch from resourceVersion `from` begins with: the recorded events after it, the
/// subscription to the next ones (taken under the same lock, so none is lost), and whether
/// `from` is older than the history kept.
fn begin_watch(
    data: &Data,
    shared: &Shared,
    resource: Resource,
    from: &str,
) -> (Vec<Arc<str>>, broadcast::Receiver<Signal>, bool) {
    // "" and "0": from now on.
    let start = from.parse::<u64>().unwrap_or(0);
    let start = if start == 0 { data.revision } else { start };
    let expired = start < data.oldest;
    let replay = data
        .history
        .iter()
        .filter(|(revision, of, _)| *revision > start && *of == resource)
        .map(|(_, _, line)| Arc::clone(line))
        .collect();
    (replay, shared.signals.subscribe(), expired)
}

/// An ERROR event (410 Gone), and the end of the stream.
async fn expire(stream: &mut TcpStream, revision: &str) {
    let line = event_line("ERROR", &gone_status(revision));
    if write_chunk(stream, &line).await {
        let _ = stream.write_all(b"0\r\n\r\n").await;
    }
}

async fn serve_watch(
    mut stream: TcpStream,
    shared: &Shared,
    resource: Resource,
    request: &Request,
) {
    let from = request
        .query
        .get("resourceVersion")
        .cloned()
        .unwrap_or_default();
    // Under the lock: the events so far and the subscription to the next, so none is lost.
    let (replay, mut signals, expired, as_http) = {
        let mut data = shared.data.lock().unwrap();
        *data.watches.entry(resource).or_default() += 1;
        let (replay, signals, expired) = begin_watch(&data, shared, resource, &from);
        (replay, signals, expired, data.expired_as_http)
    };
    if expired && as_http {
        respond(&mut stream, "410 Gone", &gone_status(&from)).await;
        return;
    }
    let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    if expired {
        expire(&mut stream, &from).await;
        return;
    }
    for line in replay {
        if !write_chunk(&mut stream, &line).await {
            return;
        }
    }
    loop {
        let line = match signals.recv().await {
            Ok(Signal::Event(of, line)) if of == resource => line.to_string(),
            Ok(Signal::Event(..)) => continue,
            Ok(Signal::Bookmark) => {
                let revision = shared.data.lock().unwrap().revision;
                let bookmark = json!({
                    "kind": resource.kind(),
                    "apiVersion": resource.api_version(),
                    "metadata": {"resourceVersion": revision.to_string()},
                });
                event_line("BOOKMARK", &bookmark)
            }
            Ok(Signal::Expire) => {
                expire(&mut stream, &from).await;
                return;
            }
            // Cut, fell behind, or the server is gone: the connection just closes.
            Ok(Signal::Cut) | Err(_) => return,
        };
        if !write_chunk(&mut stream, &line).await {
            return;
        }
    }
}
