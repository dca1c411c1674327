//! Progress output of `hoist pull`: the `--progress` choice and the
//! renderers that turn the engine's [`Event`] stream into text.
//!
//! The engine sends events on an unbounded channel and never waits for us;
//! [`drive`] consumes them on its own task and hands each to a [`Renderer`].
//! When the pull ends, the renderer also prints the result ([`Renderer::finish`])
//! in its form, so a form decides all of what a pull prints:
//!
//! | form      | progress goes to | result goes to | module        |
//! |-----------|------------------|----------------|---------------|
//! | `tty`     | stderr (bars)    | stdout         | [`terminal`]  |
//! | `plain`   | stderr (lines)   | stdout         | [`plain`]     |
//! | `docker`  | stdout           | stdout         | [`docker`]    |
//! | `json`    | stdout           | stdout         | [`json`]      |
//!
//! `auto` (the default) is `tty` when stderr is a terminal and `plain`
//! otherwise. `--quiet` drops the progress of every form and keeps the result.

use std::io::IsTerminal;

pub(crate) use hoist_engine::docker_progress::human_size;
use hoist_engine::{BlobKind, Event, Pulled};
use tokio::sync::{mpsc, oneshot};

mod docker;
mod json;
mod plain;
mod terminal;

/// The `--progress` choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub(crate) enum ProgressForm {
    /// `tty` when stderr is a terminal, else `plain`
    #[default]
    Auto,
    /// Bars redrawn in place, one line per blob and a total line
    Tty,
    /// One line per state change, no escape codes (CI logs)
    Plain,
    /// `docker pull`'s own status lines (non-terminal style), on stdout
    Docker,
    /// One JSON object per event and one for the result, on stdout
    Json,
}

impl ProgressForm {
    /// `auto` resolved against stderr.
    pub(crate) fn resolve(self) -> ProgressForm {
        match self {
            ProgressForm::Auto if std::io::stderr().is_terminal() => ProgressForm::Tty,
            ProgressForm::Auto => ProgressForm::Plain,
            form => form,
        }
    }
}

/// What a renderer knows about the pull besides its events.
#[derive(Debug, Clone)]
pub(crate) struct PullContext {
    /// The reference as the user typed it (docker's "Using default tag").
    pub(crate) reference: String,
    /// Whether layers are unpacked after the download.
    pub(crate) unpack: bool,
    /// `--max-concurrent-downloads`.
    pub(crate) max_concurrent_downloads: usize,
}

/// Turns events into output. One value renders one pull.
pub(crate) trait Renderer: Send {
    /// One event, in the order the engine sent it.
    fn event(&mut self, event: &Event);
    /// The pull succeeded: settle the progress and print the result.
    fn finish(&mut self, pulled: &Pulled);
    /// The pull failed with `error` (which `main` prints afterwards).
    fn fail(&mut self, error: &anyhow::Error);
    /// The user pressed Ctrl-C: leave the output clean.
    fn interrupt(&mut self);
}

/// The renderer for `form` (already [resolved](ProgressForm::resolve)).
pub(crate) fn renderer(form: ProgressForm, context: PullContext) -> Box<dyn Renderer> {
    match form {
        ProgressForm::Auto | ProgressForm::Plain => Box::new(plain::Plain::new()),
        ProgressForm::Tty => Box::new(terminal::Terminal::new()),
        ProgressForm::Docker => Box::new(docker::Docker::new(context)),
        ProgressForm::Json => Box::new(json::Json::new()),
    }
}

/// Feeds `events` to `renderer` until the engine drops its senders or
/// `stop` fires (Ctrl-C), then gives the renderer back. With `quiet`, events
/// are read and dropped.
pub(crate) async fn drive(
    mut renderer: Box<dyn Renderer>,
    mut events: mpsc::UnboundedReceiver<Event>,
    quiet: bool,
    mut stop: oneshot::Receiver<()>,
) -> Box<dyn Renderer> {
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) if !quiet => renderer.event(&event),
                Some(_) => {}
                None => break,
            },
            _ = &mut stop => break,
        }
    }
    renderer
}

/// The result lines the human forms print on stdout: the image and its
/// digest, then each unpacked snapshot.
pub(crate) fn result_lines(pulled: &Pulled) -> Vec<String> {
    let mut lines = vec![format!("{} {}", pulled.name, pulled.target.digest())];
    if let Some(snapshotter) = &pulled.snapshotter {
        for chain_id in &pulled.chain_ids {
            lines.push(format!("unpacked {snapshotter} {chain_id}"));
        }
    }
    lines
}

/// The lower-case name of a kind, as every form spells it.
pub(crate) fn kind_name(kind: BlobKind) -> &'static str {
    match kind {
        BlobKind::Index => "index",
        BlobKind::Manifest => "manifest",
        BlobKind::Config => "config",
        BlobKind::Layer => "layer",
        _ => "other",
    }
}
