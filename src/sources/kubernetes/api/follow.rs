//! One task per kind: a kube watcher (list, then watch, recovering on its own), whose events
//! and troubles are told to the feed as [`Update`]s.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use kube::api::ListParams;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Api;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::trim::{Kind, Object, Watched};
use super::WatchTimeouts;

/// While a kind's requests fail, how often its API is asked whether it answers again (a `list`
/// of one object), and how long that may take.
const PROBE_INTERVAL: Duration = Duration::from_secs(2);
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// After a watch request answered HTTP 410 Gone, the wait before listing again.
const RELIST_DELAY: Duration = Duration::from_secs(1);

/// What a kind's task tells the feed.
pub(super) enum Update {
    /// A (re-)list begins: the objects that follow replace the kind's store once complete.
    Listing(Kind),
    Listed(Object),
    ListDone(Kind),
    Applied(Object),
    Deleted(Object),
    /// A request for this kind failed: the API is unreachable, refuses or errs.
    Failed(Kind, String),
    /// Something went wrong that the watch itself recovers from: a cut stream (watched again
    /// from the last resourceVersion) or an expired watch (listed again).
    Recovering(Kind, String),
    /// The kind's API answers again after [`Update::Failed`].
    Answers(Kind),
}

/// What went wrong with a watch, by what it takes to recover.
enum Trouble {
    /// 410 Gone inside a watch stream, or for a page of a list: the watcher lists again.
    Expired,
    /// 410 Gone as the HTTP status of a watch request: the watcher would ask again from the
    /// same expired resourceVersion forever (kube-runtime 2.0 reads only ERROR events as
    /// expiry), so a new watcher is made, which lists first.
    Gone,
    /// The stream was cut (a restarting API server, a load balancer's idle timeout): the
    /// watcher watches again from the last resourceVersion it saw.
    Cut,
    /// A request failed: the API server is unreachable, refuses (403: the ClusterRole), or errs.
    Failed,
}

impl Trouble {
    fn of(error: &watcher::Error) -> Self {
        use watcher::Error as E;
        match error {
            E::WatchError(status) if status.code == 410 => Trouble::Expired,
            E::InitialListFailed(kube::Error::Api(status)) if status.code == 410 => {
                Trouble::Expired
            }
            E::WatchStartFailed(kube::Error::Api(status))
            | E::WatchFailed(kube::Error::Api(status))
                if status.code == 410 =>
            {
                Trouble::Gone
            }
            // kube reads an HTTP error answer to a watch request as the stream's first item.
            E::WatchFailed(kube::Error::Api(_)) => Trouble::Failed,
            E::WatchFailed(_) => Trouble::Cut,
            _ => Trouble::Failed,
        }
    }
}

/// The watcher of one kind: list, then watch, recovering on its own (with kube's default
/// backoff between attempts).
fn events<K: Watched>(
    api: Api<K>,
    timeouts: WatchTimeouts,
) -> impl WatchStreamExt<Item = Result<Event<K>, watcher::Error>> + Send + Unpin {
    let config = watcher::Config::default().timeout(timeouts.renewal_seconds());
    Box::pin(watcher::watcher(api, config).default_backoff())
}

/// The next item of a stream: `StreamExt::next` without depending on `futures`. kube's
/// `WatchStreamExt` is implemented for every `Stream`, and its bound reaches `poll_next`.
async fn next<S: WatchStreamExt + Unpin>(stream: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|context| Pin::new(&mut *stream).poll_next(context)).await
}

type Probe = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// After [`PROBE_INTERVAL`], whether `api` answers a list of one object.
fn probe<K: Watched>(api: Api<K>) -> Probe {
    Box::pin(async move {
        tokio::time::sleep(PROBE_INTERVAL).await;
        let params = ListParams::default().limit(1);
        match tokio::time::timeout(PROBE_TIMEOUT, api.list(&params)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer in {PROBE_TIMEOUT:?}")),
        }
    })
}

/// The result of the probe in flight, if any; never ready without one.
async fn probed(probe: &mut Option<Probe>) -> Result<(), String> {
    match probe {
        Some(probe) => probe.await,
        None => std::future::pending().await,
    }
}

/// Watches one kind and sends what happens to the feed, until `stop`.
pub(super) async fn follow<K: Watched>(
    api: Api<K>,
    timeouts: WatchTimeouts,
    updates: mpsc::Sender<Update>,
    stop: CancellationToken,
) {
    let mut stream = events(api.clone(), timeouts);
    // While requests fail: the probe that will tell when the API answers again.
    let mut failing: Option<Probe> = None;
    loop {
        let update = tokio::select! {
            _ = stop.cancelled() => return,
            item = next(&mut stream) => match item {
                // The watcher never ends: it retries forever.
                None => return,
                Some(Ok(event)) => {
                    failing = None;
                    match event {
                        Event::Init => Update::Listing(K::KIND),
                        Event::InitApply(object) => Update::Listed(object.entry()),
                        Event::InitDone => Update::ListDone(K::KIND),
                        Event::Apply(object) => Update::Applied(object.entry()),
                        Event::Delete(object) => Update::Deleted(object.entry()),
                    }
                }
                Some(Err(error)) => match Trouble::of(&error) {
                    Trouble::Expired | Trouble::Cut => Update::Recovering(K::KIND, error.to_string()),
                    Trouble::Gone => {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = tokio::time::sleep(RELIST_DELAY) => {}
                        }
                        stream = events(api.clone(), timeouts);
                        Update::Recovering(K::KIND, error.to_string())
                    }
                    Trouble::Failed => {
                        if failing.is_none() {
                            failing = Some(probe(api.clone()));
                        }
                        Update::Failed(K::KIND, error.to_string())
                    }
                },
            },
            answered = probed(&mut failing) => match answered {
                Ok(()) => {
                    failing = None;
                    Update::Answers(K::KIND)
                }
                Err(error) => {
                    tracing::debug!(kind = K::KIND.plural(), %error, "the Kubernetes API still fails");
                    failing = Some(probe(api.clone()));
                    continue;
                }
            },
        };
        if updates.send(update).await.is_err() {
            return;
        }
    }
}
