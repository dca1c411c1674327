//! `--progress=tty`: bars redrawn in place on stderr (the default when
//! stderr is a terminal), drawn by indicatif's [`MultiProgress`], which
//! redraws the whole block at most 20 times a second and follows the
//! terminal's width.
//!
//! ```text
//! 127.0.0.1:5000/app:1.0: sha256:5e1b…
//! manifest 5e1b0a8c9d2f done 1.2kB
//! config   8f3a6e7b1c0d done 1.5kB
//! layer    3c9b1e4f5a6d downloading [=========>          ] 1.7MB/3.4MB  1.1MB/s 2s
//! layer    77ad09f4b1e2 waiting
//! total                 downloading [=====>              ] 1.7MB/5.0MB  1.1MB/s 3s
//! ```
//!
//! One line per blob, in the order the engine announces them, and a total
//! line of the bytes to download below. A line stays when its blob settles
//! (`done`, `already exists`, `unpacked`, …), as docker's do; a layer's line
//! turns into an `extracting` bar while it is unpacked. When the pull ends,
//! fails or is interrupted (Ctrl-C), every line is settled into text without
//! a bar, so nothing half drawn is left on the screen.

#![allow(clippy::print_stdout, reason = "the result goes to stdout")]

use std::collections::HashMap;
use std::io::{self, IsTerminal};
use std::time::Instant;

use hoist_engine::docker_progress::short_id;
use hoist_engine::{BlobKind, Event, Pulled};
use hoist_oci::Digest;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Renderer, human_size, kind_name, result_lines};

/// A line with a bar: role and id, state, bar, bytes, speed, time left.
const BAR_TEMPLATE: &str = "{prefix} {msg:<11} [{wide_bar}] {decimal_bytes:>9}/{decimal_total_bytes:<9} {decimal_bytes_per_sec:>11} {eta:>3}";
/// A settled line: role and id, then what happened.
const TEXT_TEMPLATE: &str = "{prefix} {msg}";

/// Turns the terminal's echo off while bars are drawn, and back on when
/// dropped.
///
/// indicatif pads every line to the terminal's width and leaves the cursor
/// past the last column, so anything the terminal echoes (a typed key, the
/// `^C` of Ctrl-C) wraps onto a new row and shifts the block it redraws,
/// leaving a stale copy of its top line. Typed keys are not lost: they wait
/// unread for the shell, which shows them.
struct EchoOff {
    saved: Option<rustix::termios::Termios>,
}

impl EchoOff {
    fn new() -> EchoOff {
        use rustix::termios::{LocalModes, OptionalActions, tcgetattr, tcgetpgrp, tcsetattr};
        let stderr = io::stderr();
        // Only the foreground job may set the terminal (a background one
        // would be stopped by SIGTTOU).
        let foreground = tcgetpgrp(&stderr).is_ok_and(|pgrp| pgrp == rustix::process::getpgrp());
        let saved = foreground.then(|| tcgetattr(&stderr).ok()).flatten();
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_modes.remove(LocalModes::ECHO);
            if tcsetattr(&stderr, OptionalActions::Now, &quiet).is_err() {
                return EchoOff { saved: None };
            }
        }
        EchoOff { saved }
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        if let Some(saved) = self.saved.take() {
            let _ = rustix::termios::tcsetattr(
                io::stderr(),
                rustix::termios::OptionalActions::Now,
                &saved,
            );
        }
    }
}

/// Where one blob's line is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    /// Queued, downloading, verifying or extracting: not final.
    Busy,
    /// Done, already there, unpacked: final unless unpacking follows.
    Settled,
}

/// What a busy bar counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Download,
    Extract,
}

struct Line {
    bar: ProgressBar,
    state: State,
    /// What the bar shows; `None` while the line is text.
    phase: Option<Phase>,
    /// Bytes counted into the total line so far.
    counted: u64,
    /// The blob counts towards the total line.
    leaf: bool,
}

/// The terminal renderer.
pub(crate) struct Terminal {
    multi: MultiProgress,
    bar_style: ProgressStyle,
    text_style: ProgressStyle,
    header_style: ProgressStyle,
    header: Option<ProgressBar>,
    total: Option<ProgressBar>,
    lines: HashMap<Digest, Line>,
    started: Instant,
    /// Set while bars are drawn; dropped when they are settled.
    echo: Option<EchoOff>,
}

impl Terminal {
    pub(crate) fn new() -> Terminal {
        // Hidden when stderr is not a terminal (a forced `tty` on a pipe).
        let target = ProgressDrawTarget::stderr();
        let bar_style = ProgressStyle::with_template(BAR_TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let text_style = ProgressStyle::with_template(TEXT_TEMPLATE)
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        let header_style =
            ProgressStyle::with_template("{msg}").unwrap_or_else(|_| text_style.clone());
        Terminal {
            multi: MultiProgress::with_draw_target(target),
            bar_style,
            text_style,
            header_style,
            header: None,
            total: None,
            lines: HashMap::new(),
            started: Instant::now(),
            echo: None,
        }
    }

    fn header(&mut self, message: String) {
        match &self.header {
            Some(bar) => bar.set_message(message),
            None => {
                let bar = ProgressBar::new(0)
                    .with_style(self.header_style.clone())
                    .with_message(message);
                self.header = Some(self.add(bar));
            }
        }
    }

    /// Adds a bar above the total line.
    fn add(&self, bar: ProgressBar) -> ProgressBar {
        match &self.total {
            Some(total) => self.multi.insert_before(total, bar),
            None => self.multi.add(bar),
        }
    }

    /// The line of `digest`, made on first sight.
    fn line(&mut self, digest: &Digest, kind: BlobKind) -> &mut Line {
        if !self.lines.contains_key(digest) {
            let bar = ProgressBar::new(0)
                .with_style(self.text_style.clone())
                .with_prefix(format!("{:<8} {}", kind_name(kind), short_id(digest)));
            let bar = self.add(bar);
            self.lines.insert(
                digest.clone(),
                Line {
                    bar,
                    state: State::Busy,
                    phase: None,
                    counted: 0,
                    leaf: false,
                },
            );
        }
        self.lines.get_mut(digest).expect("inserted above")
    }

    fn total(&mut self) -> &ProgressBar {
        if self.total.is_none() {
            let bar = ProgressBar::new(0)
                .with_style(self.bar_style.clone())
                .with_prefix(format!("{:<21}", "total"))
                .with_message("downloading");
            self.total = Some(self.multi.add(bar));
        }
        self.total.as_ref().expect("made above")
    }

    /// Moves the total line by what `digest` has stored now.
    fn count(&mut self, digest: &Digest, current: u64) {
        let Some(line) = self.lines.get_mut(digest) else {
            return;
        };
        if !line.leaf || current <= line.counted {
            return;
        }
        let delta = current - line.counted;
        line.counted = current;
        if let Some(total) = &self.total {
            total.inc(delta);
        }
    }

    fn settle(&mut self, digest: &Digest, kind: BlobKind, message: String) {
        let style = self.text_style.clone();
        let line = self.line(digest, kind);
        line.state = State::Settled;
        line.phase = None;
        line.bar.set_style(style);
        line.bar.set_message(message);
    }

    /// Shows a bar on `digest`'s line; a new phase (download, extraction)
    /// starts the bar afresh, so speed and time left are
    /// the phase's own.
    fn busy_bar(
        &mut self,
        digest: &Digest,
        kind: BlobKind,
        phase: Phase,
        current: u64,
        total: u64,
    ) {
        let style = self.bar_style.clone();
        let line = self.line(digest, kind);
        if line.phase != Some(phase) {
            line.bar.set_style(style);
            line.bar.reset();
        }
        line.bar.set_length(total);
        line.state = State::Busy;
        line.phase = Some(phase);
        line.bar.set_message(match phase {
            Phase::Download => "downloading",
            Phase::Extract => "extracting",
        });
        line.bar.set_position(current);
    }

    /// Settles every busy line with `message` and stops drawing bars.
    fn abandon(&mut self, message: &str) {
        for line in self.lines.values_mut() {
            if line.state == State::Busy {
                line.bar.set_style(self.text_style.clone());
                line.bar.set_message(message.to_string());
                line.state = State::Settled;
                line.phase = None;
            }
        }
        if let Some(total) = &self.total {
            total.set_style(self.text_style.clone());
            total.set_message(message.to_string());
        }
        self.settle_all();
    }

    fn settle_all(&mut self) {
        for bar in self.header.iter().chain(self.total.iter()) {
            bar.finish();
        }
        for line in self.lines.values() {
            line.bar.finish();
        }
        self.echo = None;
    }
}

impl Renderer for Terminal {
    fn event(&mut self, event: &Event) {
        if self.echo.is_none() && io::stderr().is_terminal() {
            self.echo = Some(EchoOff::new());
        }
        match event {
            Event::Resolving { reference } => self.header(format!("{reference}: resolving")),
            Event::Resolved {
                reference,
                descriptor,
            } => self.header(format!("{reference}: {}", descriptor.digest())),
            Event::Waiting { digest, kind, size } => {
                self.total().inc_length(*size);
                let line = self.line(digest, *kind);
                line.leaf = true;
                line.bar.set_message("waiting");
            }
            Event::Downloading {
                digest,
                kind,
                current,
                total,
            } => {
                self.busy_bar(digest, *kind, Phase::Download, *current, *total);
                self.count(digest, *current);
            }
            Event::Fetching { digest, kind, host } => {
                self.line(digest, *kind)
                    .bar
                    .set_message(format!("from {host}"));
            }
            Event::Retrying {
                digest,
                attempt,
                offset,
                ..
            } => {
                if let Some(line) = self.lines.get_mut(digest) {
                    line.bar.set_message(format!("retry #{attempt}"));
                    line.bar.set_position(*offset);
                }
            }
            Event::Verifying { digest, kind } => {
                self.line(digest, *kind).bar.set_message("verifying");
            }
            Event::Done { digest, kind, size } => {
                self.count(digest, *size);
                self.settle(digest, *kind, format!("done {}", human_size(*size)));
            }
            Event::AlreadyExists { digest, kind, size } => {
                let leaf = self.line(digest, *kind).leaf;
                if leaf && let Some(total) = &self.total {
                    total.dec_length(*size);
                }
                self.settle(digest, *kind, "already exists".to_string());
            }
            Event::Extracting {
                digest,
                current,
                total,
            } => {
                if let Some(bar) = &self.total {
                    bar.set_message("downloaded");
                }
                self.busy_bar(digest, BlobKind::Layer, Phase::Extract, *current, *total);
            }
            Event::LayerUnpacked { digest, .. } => {
                self.settle(digest, BlobKind::Layer, "pull complete".to_string());
            }
            Event::LayerAlreadyUnpacked { digest, .. } => {
                self.settle(digest, BlobKind::Layer, "already exists".to_string());
            }
            Event::ImageDone {
                name,
                digest,
                up_to_date,
            } => {
                let status = if *up_to_date {
                    "image is up to date"
                } else {
                    "image saved"
                };
                self.header(format!("{name}: {digest} {status}"));
            }
            _ => {}
        }
    }

    fn finish(&mut self, pulled: &Pulled) {
        if let Some(total) = &self.total {
            total.set_style(self.text_style.clone());
            total.set_message(format!(
                "{} blobs, {} downloaded in {:.1}s",
                pulled.blobs,
                human_size(pulled.downloaded),
                self.started.elapsed().as_secs_f64()
            ));
        }
        self.settle_all();
        for line in result_lines(pulled) {
            println!("{line}");
        }
    }

    fn fail(&mut self, _error: &anyhow::Error) {
        self.abandon("failed");
    }

    fn interrupt(&mut self) {
        self.abandon("interrupted");
    }
}
