//! Reloading the policy set when its directory changes or on SIGHUP.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::engine::PolicyEngine;
use crate::error::PolicyError;

/// Quiet period after the last change before reloading, so an editor's
/// write-rename-chmod sequence causes one reload.
const DEBOUNCE: Duration = Duration::from_millis(200);

/// Upper bound on the wait under a continuous stream of changes.
const MAX_DEBOUNCE: Duration = Duration::from_secs(2);

/// Keeps the policy directory watched; dropping it stops watching and stops
/// reacting to SIGHUP.
pub struct ReloadWatcher {
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ReloadWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadWatcher").finish_non_exhaustive()
    }
}

impl Drop for ReloadWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches the engine's policy directory (debounced ~200 ms) and SIGHUP, and
/// calls [`PolicyEngine::reload`] on each. It does not load the set itself:
/// call `reload` once at startup. A rejected reload keeps the previous set
/// and is logged by `reload`.
///
/// Must be called inside a tokio runtime with I/O and time enabled.
///
/// # Errors
/// No current tokio runtime, the directory cannot be watched, or the SIGHUP
/// handler cannot be installed.
pub fn spawn_reloader(engine: Arc<PolicyEngine>) -> Result<ReloadWatcher, PolicyError> {
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| PolicyError::NoRuntime)?;
    let dir = engine.dir().to_path_buf();
    let changed = Arc::new(Notify::new());

    let signal = {
        // Installing a signal handler needs the runtime's context.
        let _entered = runtime.enter();
        Hangup::new()?
    };

    let notifier = Arc::clone(&changed);
    let watched_dir = dir.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(event) if is_relevant(&event, &watched_dir) => notifier.notify_one(),
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(dir = %watched_dir.display(), %error, "policy directory watch error");
                // Reload anyway: a missed event must not leave stale policies.
                notifier.notify_one();
            }
        }
    })
    .map_err(|source| PolicyError::Watch {
        dir: dir.clone(),
        source,
    })?;
    // A directory that does not exist yet is watched for through its parent, so creating
    // it later brings the policies in without a restart (until then everything is denied).
    let watching_dir = dir.is_dir();
    let target = if watching_dir {
        dir.clone()
    } else {
        dir.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| dir.clone())
    };
    watcher
        .watch(&target, RecursiveMode::NonRecursive)
        .map_err(|source| PolicyError::Watch {
            dir: target.clone(),
            source,
        })?;

    let task = runtime.spawn(run(engine, changed, signal, watcher, watching_dir));
    tracing::info!(dir = %dir.display(), watching = %target.display(), "watching policy directory for changes and SIGHUP");
    Ok(ReloadWatcher { task })
}

/// Whether a file-system event can change the policy set: a mutation of a
/// `.cedar` file or of the directory itself. Reads (including our own
/// reloads) are ignored.
fn is_relevant(event: &notify::Event, dir: &Path) -> bool {
    let mutating = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Any | EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
        EventKind::Other => false,
    };
    mutating
        && (event.paths.is_empty()
            || event
                .paths
                .iter()
                .any(|p| p == dir || p.extension().is_some_and(|ext| ext == "cedar")))
}

async fn run(
    engine: Arc<PolicyEngine>,
    changed: Arc<Notify>,
    mut signal: Hangup,
    mut watcher: notify::RecommendedWatcher,
    mut watching_dir: bool,
) {
    loop {
        let trigger = tokio::select! {
            () = changed.notified() => {
                settle(&changed).await;
                "file change"
            }
            () = signal.recv() => "SIGHUP",
        };
        let dir: PathBuf = engine.dir().to_path_buf();
        if !watching_dir && dir.is_dir() {
            match watcher.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => watching_dir = true,
                Err(error) => {
                    tracing::warn!(dir = %dir.display(), %error, "cannot watch the new policy directory")
                }
            }
        }
        let engine = Arc::clone(&engine);
        tracing::info!(dir = %dir.display(), trigger, "reloading policies");
        // Parsing and validation are CPU work: keep them off the async workers.
        // `reload` logs its own outcome.
        if let Err(error) = tokio::task::spawn_blocking(move || engine.reload()).await {
            tracing::error!(dir = %dir.display(), %error, "policy reload task failed");
        }
    }
}

/// Waits until no change has been reported for [`DEBOUNCE`] (at most
/// [`MAX_DEBOUNCE`] in total).
async fn settle(changed: &Notify) {
    let deadline = Instant::now() + MAX_DEBOUNCE;
    while tokio::time::timeout(DEBOUNCE, changed.notified())
        .await
        .is_ok()
    {
        if Instant::now() >= deadline {
            break;
        }
    }
}

/// SIGHUP notifications (never fires where there are no Unix signals).
struct Hangup {
    #[cfg(unix)]
    signal: tokio::signal::unix::Signal,
}

impl Hangup {
    #[cfg(unix)]
    fn new() -> Result<Self, PolicyError> {
        let signal = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
            .map_err(PolicyError::Signal)?;
        Ok(Self { signal })
    }

    #[cfg(not(unix))]
    fn new() -> Result<Self, PolicyError> {
        Ok(Self {})
    }

    #[cfg(unix)]
    async fn recv(&mut self) {
        if self.signal.recv().await.is_none() {
            // The signal driver is gone (runtime shutting down): stop
            // reacting to SIGHUP but keep serving file changes.
            std::future::pending::<()>().await;
        }
    }

    #[cfg(not(unix))]
    async fn recv(&mut self) {
        std::future::pending::<()>().await;
    }
}
