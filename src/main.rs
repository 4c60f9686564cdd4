//! The `hearth` command: wiring only. Everything it runs lives in the library.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use hearth::config::{values::ListenAddr, Config, Overrides};

/// mimalloc instead of glibc's malloc. Measured on a 100,000-record zone (BENCHMARKS.md):
/// glibc keeps what a load frees in the arena of the thread that loaded it (a blocking-pool
/// thread), while the query threads grow arenas of their own, so RSS after a reload or a pass
/// over cold names stays far above what is in use. mimalloc returns freed pages to the system
/// and shares them across threads.
///
/// Built with `no_thp` (Cargo.toml): by default mimalloc asks for transparent huge pages on
/// its arena, and on a host in THP `madvise` mode (Debian's default) every touched 2 MiB of heap
/// is then resident. An idle server measured 21 MB RSS, 12 MB of it huge pages, for 1.6 MB of
/// heap; without them, 10.6 MB. Neither hit rate moved. (On a host in THP `always` mode,
/// `MIMALLOC_ALLOW_THP=0` turns them off for the process.)
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h; libmimalloc-sys names no constant for it. mimalloc
/// keeps its option numbers stable (retired ones stay as `deprecated_` placeholders).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

/// mimalloc's purge delay, unless `MIMALLOC_PURGE_DELAY` is set: a page that empties goes back
/// to the system after this many milliseconds (mimalloc 3's default is a second, and its arenas
/// wait ten times the delay).
///
/// It was 0 (at once) until issue 14's miss runs: a cache miss's task, upstream exchange and
/// cache entry empty and refill pages all the time, and with 0 each miss cost 1.6 page faults.
/// One pass of 200,000 misses (1,000,000-name upstream, `hearth-loadgen --once -q 100`, Hearth
/// on one core):
///
/// | delay | page faults | misses/s |
/// |---|---:|---:|
/// | 0 | 314,000-318,000 | 18,100-22,300 |
/// | 100 ms | 26,100 | 23,400-26,800 |
/// | 1000 ms | 16,700-17,000 | 23,700-26,800 |
///
/// 0 was chosen for what a load leaves behind: a delayed purge runs only when the thread that
/// freed the page calls the allocator again, and the thread that loaded a zone or a hosts file
/// goes idle right after freeing what the load used (a 100,000-line hosts file: 29 MB RSS at 0,
/// 41 MB at 100 ms). That is now handled where it happens: every load ends with
/// [`release_freed`] on its own thread ([`hearth::memory`]), so loads keep 0's footprint and
/// queries get the delay.
///
/// Earlier measurements (hits, before `no_thp`): with huge pages, 0 cost 13% of the hit rate
/// (nix's per-batch socket headers emptied a page each batch, purged and faulted back in);
/// without them the delay did not move the hit rate (559,000-597,000 q/s at 0, 10 and 1000 ms).
const PURGE_DELAY_MS: std::ffi::c_long = 100;

fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores a number in mimalloc's option table; it is safe to call
        // at any time, from any thread.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) }
    }
    hearth::memory::set_release(release_freed);
    hearth::memory::set_huge_pages(advise_huge_pages);
    hearth::memory::set_prefetch(prefetch);
}

/// A prefetch of the cache line at `address` into every level of the cache (see
/// [`hearth::memory::prefetch`]); nothing on other architectures.
fn prefetch(address: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it reads nothing into a register, never faults (an address
    // that is not mapped is ignored) and writes nothing, so any address is sound.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(address as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// `madvise(MADV_HUGEPAGE)` on the whole huge pages inside `[address, address + length)`
/// (see [`hearth::memory::advise_huge_pages`]). A refusal is only logged: the range keeps small
/// pages.
fn advise_huge_pages(address: usize, length: usize) {
    use hearth::memory::HUGE_PAGE;
    let start = address.next_multiple_of(HUGE_PAGE);
    let end = address.saturating_add(length) / HUGE_PAGE * HUGE_PAGE;
    let Some(whole) = end.checked_sub(start).filter(|&whole| whole > 0) else {
        return;
    };
    let Some(pointer) = std::ptr::NonNull::new(start as *mut std::ffi::c_void) else {
        return;
    };
    // SAFETY: MADV_HUGEPAGE only sets which page size the kernel backs the range with; it never
    // changes the range's contents or whether it is mapped, so no memory the program uses can
    // change under it. A range that is not mapped is refused (ENOMEM).
    let advised = unsafe {
        nix::sys::mman::madvise(pointer, whole, nix::sys::mman::MmapAdvise::MADV_HUGEPAGE)
    };
    if let Err(error) = advised {
        tracing::debug!(%error, "madvise(MADV_HUGEPAGE) refused; the table keeps small pages");
    }
}

/// Gives back what this thread freed and every purgeable page of mimalloc's shared arenas now,
/// whatever the delay: `mi_collect(true)` collects the calling thread's heap and forces the
/// arenas' purge.
fn release_freed() {
    // SAFETY: mi_collect only walks and purges mimalloc's own structures for the calling
    // thread and the process's arenas; it is safe to call from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// sysexits.h EX_USAGE: the configuration (or the command line) is wrong.
const EXIT_CONFIG: u8 = 64;

/// How long in-flight queries may take to finish after SIGTERM/SIGINT.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

#[derive(Parser)]
#[command(
    name = "hearth",
    version,
    about = "A DNS server: hosts files first, local zones, then upstream resolvers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer DNS queries on UDP and TCP.
    Serve {
        /// Configuration file; without it (and without HEARTH_CONFIG), the embedded default.
        #[arg(long, short, env = "HEARTH_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on, replacing server.listen; may be given several times.
        #[arg(long, short, value_name = "ADDR")]
        listen: Vec<ListenAddr>,
        /// Log format.
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Load the configuration and every file it names, report every problem as
    /// `file:line: reason`, and exit 0 only if there is none.
    Check {
        /// Configuration file; without it (and without HEARTH_CONFIG), the embedded default.
        #[arg(long, short, env = "HEARTH_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Translate a CoreDNS Corefile into an equivalent hearth.toml, written to stdout with a
    /// comment for each choice; what Hearth cannot express is reported as `FILE:LINE: reason`.
    ImportCorefile {
        /// The Corefile to read.
        corefile: PathBuf,
        /// Where to write the inline entries of a `hosts { ... }` block, as a hosts file the
        /// generated configuration lists in files.paths (Hearth reads hosts files only).
        #[arg(long, value_name = "FILE")]
        inline_hosts: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

fn main() -> ExitCode {
    tune_allocator();
    match Cli::parse().command {
        Command::Serve {
            config,
            listen,
            log_format,
        } => serve(config.as_deref(), listen, log_format),
        Command::Check { config } => check(config.as_deref()),
        Command::ImportCorefile {
            corefile,
            inline_hosts,
        } => {
            let options = hearth::corefile::ImportOptions { inline_hosts };
            let text = match std::fs::read_to_string(&corefile) {
                Ok(text) => text,
                Err(error) => {
                    eprintln!("{}: cannot read: {error}", corefile.display());
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            match hearth::corefile::import(&text, &options) {
                Ok(imported) => {
                    if let (Some(path), Some(entries)) =
                        (&options.inline_hosts, &imported.inline_hosts)
                    {
                        if let Err(error) = std::fs::write(path, entries) {
                            eprintln!("{}: cannot write: {error}", path.display());
                            return ExitCode::FAILURE;
                        }
                    }
                    print!("{}", imported.toml);
                    ExitCode::SUCCESS
                }
                Err(error) if error.line == 0 => {
                    eprintln!("{}: {}", corefile.display(), error.kind);
                    ExitCode::from(EXIT_CONFIG)
                }
                Err(error) => {
                    eprintln!("{}:{}: {}", corefile.display(), error.line, error.kind);
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
    }
}

/// Logs go to stderr; `HEARTH_LOG` (or `RUST_LOG`) filters them, `info` by default. hickory's
/// validator warns about every bogus answer it sees, which anyone can ask for: those are
/// SERVFAIL with an Extended DNS Error and counted in `dnssec_answers_total`, so by default its
/// warnings are not logged.
fn init_logging(format: LogFormat) {
    let filter = std::env::var("HEARTH_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info,hickory_net::dnssec=error".to_owned());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Raises the open-files soft limit to the hard limit, as Unbound and nginx do for their
/// `outgoing-range` / `worker_rlimit_nofile`: the plain-UDP upstream sockets stay open between
/// queries (`forward.udp_ports`, 16,384 by default), and a soft limit of 1,024 (the usual
/// default) would shrink that pool, and with it the ports a query's port is drawn from. The
/// hard limit is the operator's; nothing is raised past it. Returns the limit now, if known.
fn raise_open_files_limit() -> Option<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
    if soft >= hard {
        return Some(soft);
    }
    match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
        Ok(()) => Some(hard),
        Err(error) => {
            tracing::warn!(%error, soft, hard, "cannot raise the open-files limit");
            Some(soft)
        }
    }
}

fn serve(config_path: Option<&Path>, listen: Vec<ListenAddr>, log_format: LogFormat) -> ExitCode {
    init_logging(log_format);
    if let Some(limit) = raise_open_files_limit() {
        tracing::debug!(limit, "open-files limit");
    }
    let overrides = Overrides {
        listen: listen.into_iter().map(|a| a.0).collect(),
    };
    let config = match Config::load(config_path, &overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("hearth: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hearth: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let running = match hearth::app::start(&config).await {
            Ok(running) => running,
            Err(error) => {
                eprintln!("hearth: {error}");
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        if let Some(path) = config_path {
            // Acts only while the running configuration has server.watch_config on.
            running.watch_config_file(path.to_path_buf(), overrides.clone());
        }
        let mut signals = match Signals::new() {
            Ok(signals) => signals,
            Err(error) => {
                eprintln!("hearth: cannot install signal handlers: {error}");
                return ExitCode::FAILURE;
            }
        };
        let signal = loop {
            match signals.next().await {
                Signal::Reload => {
                    tracing::info!("SIGHUP: reloading the configuration and every source");
                    // Errors are logged (file:line: reason) and counted by `reload`; the
                    // running configuration keeps serving.
                    let _ = running.reload(config_path, &overrides).await;
                }
                Signal::Stop(name) => break name,
            }
        };
        let lameduck = config.server.lameduck;
        if !lameduck.is_zero() {
            running.enter_lameduck();
            tracing::info!(signal, ?lameduck, "lameduck: /ready fails, queries are still answered");
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(lameduck) => break,
                    next = signals.next() => if let Signal::Stop(again) = next {
                        tracing::info!(signal = again, "second signal: lameduck cut short");
                        break;
                    },
                }
            }
        }
        tracing::info!(signal, "shutting down");
        if running.shutdown(SHUTDOWN_DEADLINE).await {
            tracing::info!("stopped");
        } else {
            tracing::warn!(deadline = ?SHUTDOWN_DEADLINE, "queries still in flight at the deadline were abandoned");
        }
        ExitCode::SUCCESS
    })
}

/// What a signal asks of the server.
enum Signal {
    /// SIGHUP: re-read the configuration and every source.
    Reload,
    /// SIGTERM (what Kubernetes and systemd send) or SIGINT (Ctrl-C): lameduck, then stop.
    Stop(&'static str),
}

/// The signals the server listens to, installed once so none is lost between two waits.
struct Signals {
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            hangup: signal(SignalKind::hangup())?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.terminate.recv() => Signal::Stop("SIGTERM"),
            _ = self.interrupt.recv() => Signal::Stop("SIGINT"),
            _ = self.hangup.recv() => Signal::Reload,
        }
    }
}

fn check(config_path: Option<&Path>) -> ExitCode {
    let config = match Config::load(config_path, &Overrides::default()) {
        Ok(config) => config,
        Err(error) => {
            println!("{error}");
            return ExitCode::FAILURE;
        }
    };
    // Each source checks the data it would load (hosts files, zone files, manifests).
    let problems: Vec<String> = config
        .sources
        .iter()
        .flat_map(|source| source.check())
        .collect();
    for problem in &problems {
        println!("{problem}");
    }
    if problems.is_empty() {
        println!(
            "{}: ok (order: {})",
            config.origin,
            config
                .order
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        ExitCode::SUCCESS
    } else {
        println!("{} problem(s)", problems.len());
        ExitCode::FAILURE
    }
}
