//! docker's pull progress from the engine's events: a sans-IO translator
//! from [`Event`]s to the JSON messages `POST /images/create` streams, and
//! the one line a non-terminal docker CLI prints for each.
//!
//! The wording and order follow moby: `<tag>: Pulling from <path>` once the
//! reference resolved, then per layer only (never for an index, manifest or
//! config), with the layer's id being the first 12 hex digits of its digest,
//! `Pulling fs layer`, `Waiting`, `Downloading` (with counts), `Verifying
//! Checksum`, `Download complete`, `Extracting` (with counts), `Pull
//! complete` or `Already exists`, and at the end `Digest: <digest>` and
//! `Status: Downloaded newer image for <ref>` or `Status: Image is up to date
//! for <ref>`.
//!
//! moby writes three shapes of message (`daemon/internal/streamformatter`),
//! and the CLI renders them differently, so [`Message`] keeps them apart:
//!
//! | moby call | JSON | non-terminal CLI |
//! |---|---|---|
//! | `progress.Message` (`Pulling from`, `Digest`, `Status`) | `{"status","id"}` | printed |
//! | `progress.Update` (`Pulling fs layer`, `Pull complete`, …) | `{"status","progressDetail":{},"id"}` | printed |
//! | a progress reader (`Downloading`, `Extracting`) | `{"status","progressDetail":{"current","total"},"progress","id"}` | hidden |
//!
//! How the engine's events map:
//!
//! | event | message |
//! |---|---|
//! | `Resolved` | `<tag>: Pulling from <path>` (a digest reference stands for the tag) |
//! | `Waiting` burst, layer not stored | `<id>: Pulling fs layer` |
//! | …and beyond the download limit | `<id>: Waiting` |
//! | `Downloading` (layer) | `<id>: Downloading` with counts |
//! | `Retrying` (layer) | `<id>: Retrying in N second(s)` |
//! | `Verifying` (layer) | `<id>: Verifying Checksum` |
//! | `Done` (layer) | `<id>: Download complete` (and `Pull complete` without unpacking) |
//! | `Extracting` | `<id>: Extracting` with counts |
//! | `LayerUnpacked`, or `LayerAlreadyUnpacked` of a layer just downloaded | `<id>: Pull complete` |
//! | `LayerAlreadyUnpacked` of a stored layer, or `AlreadyExists` without unpacking | `<id>: Already exists` |
//! | `ImageDone` | `Digest: <digest>`, `Status: …` |
//!
//! The engine announces every config and layer with `Waiting` at once and
//! then reports `AlreadyExists` for the stored ones before any other event,
//! so the burst is held until the first other event. When every announced
//! blob turns out to be stored, no layer line is written at all, as moby's
//! containerd store hides layer progress when the content is all present
//! (and its classic store never looks at the layers of an image it has).
//! `Retrying` rounds the engine's sub-second delay up to whole seconds, the
//! unit docker prints.

use hoist_oci::{Digest, Reference};
use serde::Serialize;

use crate::{BlobKind, Event};

/// How the pull runs, which decides some lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TranslatorOptions {
    /// The pull unpacks layers (`Pull complete` comes from unpacking, not
    /// from the download).
    pub unpack: bool,
    /// Blobs downloaded at once; the layers beyond it are `Waiting`.
    pub max_concurrent_downloads: usize,
}

impl Default for TranslatorOptions {
    fn default() -> Self {
        TranslatorOptions {
            unpack: true,
            max_concurrent_downloads: 3,
        }
    }
}

/// docker's `progressDetail`: byte counts, omitted when zero (as Go's
/// `omitempty` does), so `{}` marks a status update without counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ProgressDetail {
    /// Bytes done.
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    /// Bytes in all.
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl ProgressDetail {
    /// moby's server-side rendering of the counts (the deprecated
    /// `progress` field): a 50-column bar and `current/total` in decimal
    /// units, as `JSONProgress.String` renders for a daemon without a
    /// terminal (200 columns wide, no start time).
    pub fn render(&self) -> String {
        if self.current == 0 && self.total == 0 {
            return String::new();
        }
        if self.total == 0 {
            return format!("{:>8}", human_size(self.current));
        }
        let percent = ((self.current as f64 / self.total as f64 * 100.0) as usize / 2).min(50);
        let bar = format!("[{}>{}] ", "=".repeat(percent), " ".repeat(50 - percent));
        let numbers = if self.current > self.total {
            format!("{:>8}", human_size(self.current))
        } else {
            format!("{:>8}/{}", human_size(self.current), human_size(self.total))
        };
        bar + &numbers
    }
}

/// Sizes as docker prints them (go-units' `HumanSize`): 1000-based units
/// with four significant figures, trailing zeros dropped (Go's `%.4g`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit < UNITS.len() - 1 {
        size /= 1000.0;
        unit += 1;
    }
    format!("{}{}", significant(size, 4), UNITS[unit])
}

/// Go's `%.<digits>g` for `0 <= value < 1000`: that many significant
/// digits, trailing zeros dropped.
fn significant(value: f64, digits: i32) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let exponent = value.abs().log10().floor() as i32;
    let decimals = (digits - 1 - exponent).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// One JSON message of docker's pull stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The layer id (or, for `Pulling from`, the tag); `None` for
    /// messages about the whole pull.
    pub id: Option<String>,
    /// The status text (`Pull complete`, `Digest: …`).
    pub status: String,
    /// `None` for a plain message; counts (possibly none, rendering as
    /// `{}`) for a progress update.
    pub progress: Option<ProgressDetail>,
    /// The error, for the message that ends a failed stream.
    pub error: Option<String>,
}

/// The wire form, in moby's field order.
#[derive(Serialize)]
struct Wire<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    status: &'a str,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    progress_detail: Option<ProgressDetail>,
    #[serde(rename = "progress", skip_serializing_if = "String::is_empty")]
    progress: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    id: &'a str,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    error_detail: Option<ErrorDetail<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    message: &'a str,
}

impl Message {
    /// A plain message (moby's `progress.Message`).
    pub fn status(id: Option<&str>, status: impl Into<String>) -> Message {
        Message {
            id: id.map(str::to_string),
            status: status.into(),
            progress: None,
            error: None,
        }
    }

    /// A status update of a layer without counts (moby's `progress.Update`).
    pub fn update(id: &str, action: impl Into<String>) -> Message {
        Message {
            id: Some(id.to_string()),
            status: action.into(),
            progress: Some(ProgressDetail::default()),
            error: None,
        }
    }

    /// A status update of a layer with byte counts.
    pub fn counts(id: &str, action: impl Into<String>, current: u64, total: u64) -> Message {
        Message {
            id: Some(id.to_string()),
            status: action.into(),
            progress: Some(ProgressDetail { current, total }),
            error: None,
        }
    }

    /// The message that ends a failed stream.
    pub fn error(message: impl Into<String>) -> Message {
        Message {
            id: None,
            status: String::new(),
            progress: None,
            error: Some(message.into()),
        }
    }

    /// The message as docker's JSON object.
    pub fn to_json(&self) -> String {
        let wire = Wire {
            status: &self.status,
            progress_detail: self.progress,
            progress: self.progress.map(|p| p.render()).unwrap_or_default(),
            id: self.id.as_deref().unwrap_or(""),
            error_detail: self.error.as_deref().map(|message| ErrorDetail { message }),
            error: self.error.as_deref(),
        };
        serde_json::to_string(&wire).expect("a message serializes")
    }

    /// The message as one line of the stream (moby ends each with CRLF).
    pub fn to_line(&self) -> String {
        let mut line = self.to_json();
        line.push_str("\r\n");
        line
    }

    /// What the docker CLI prints for this message when its output is not
    /// a terminal (`jsonmessage.Display`): nothing for a message with
    /// counts ("disable progressbar in non-terminal") or an error (the CLI
    /// reports it as its error), else `<id>: <status>` or `<status>`.
    pub fn plain(&self) -> Option<String> {
        if self.error.is_some() {
            return None;
        }
        if self.progress.is_some_and(|p| p.current > 0 || p.total > 0) {
            return None;
        }
        Some(match &self.id {
            Some(id) => format!("{id}: {}", self.status),
            None => self.status.clone(),
        })
    }
}

/// docker's layer id: the first 12 hex digits of the digest.
pub fn short_id(digest: &Digest) -> String {
    digest.digest().chars().take(12).collect()
}

/// What docker would know of one config or layer.
#[derive(Debug)]
struct Leaf {
    digest: Digest,
    kind: BlobKind,
    /// `AlreadyExists` arrived: the blob was stored before this pull.
    stored: bool,
}

/// Turns one pull's events into docker's messages. Feed every event to
/// [`Translator::event`] in order and call [`Translator::finish`] when the
/// pull ends (success or failure).
#[derive(Debug)]
pub struct Translator {
    options: TranslatorOptions,
    /// Configs and layers in the order the engine announced them.
    leaves: Vec<Leaf>,
    /// A `Waiting` burst is held until the first event after it.
    holding: bool,
    /// Every announced blob was stored: no layer lines (see the module docs).
    hide_layers: bool,
    /// `Pulling from` was said.
    resolved: bool,
}

impl Translator {
    /// A translator for one pull.
    pub fn new(options: TranslatorOptions) -> Translator {
        Translator {
            options,
            leaves: Vec::new(),
            holding: false,
            hide_layers: false,
            resolved: false,
        }
    }

    /// Whether the reference resolved (`Pulling from` was said), so a
    /// failure is no longer about finding the manifest.
    pub fn resolved(&self) -> bool {
        self.resolved
    }

    fn leaf(&mut self, digest: &Digest) -> Option<&mut Leaf> {
        self.leaves.iter_mut().find(|leaf| &leaf.digest == digest)
    }

    fn is_layer(&self, digest: &Digest) -> bool {
        self.leaves
            .iter()
            .any(|leaf| &leaf.digest == digest && leaf.kind == BlobKind::Layer)
    }

    /// A layer line, unless layer lines are hidden.
    fn layer(&self, out: &mut Vec<Message>, message: Message) {
        if !self.hide_layers {
            out.push(message);
        }
    }

    /// What the held `Waiting` burst means now that the stored blobs are
    /// known.
    fn release(&mut self, out: &mut Vec<Message>) {
        if !self.holding {
            return;
        }
        self.holding = false;
        self.hide_layers = self.leaves.iter().all(|leaf| leaf.stored);
        if self.hide_layers {
            return;
        }
        for leaf in &self.leaves {
            if leaf.kind != BlobKind::Layer {
                continue;
            }
            let id = short_id(&leaf.digest);
            if !leaf.stored {
                out.push(Message::update(&id, "Pulling fs layer"));
            } else if !self.options.unpack {
                out.push(Message::update(&id, "Already exists"));
            }
        }
        // The engine's download limit counts configs too.
        let limit = self.options.max_concurrent_downloads.max(1);
        for leaf in self.leaves.iter().filter(|leaf| !leaf.stored).skip(limit) {
            if leaf.kind == BlobKind::Layer {
                out.push(Message::update(&short_id(&leaf.digest), "Waiting"));
            }
        }
    }

    /// The messages `event` adds, in order.
    pub fn event(&mut self, event: &Event) -> Vec<Message> {
        let mut out = Vec::new();
        match event {
            Event::Waiting { digest, kind, .. } => {
                self.leaves.push(Leaf {
                    digest: digest.clone(),
                    kind: *kind,
                    stored: false,
                });
                self.holding = true;
                return out;
            }
            Event::AlreadyExists { digest, .. } => {
                let holding = self.holding;
                let unpack = self.options.unpack;
                let hide = self.hide_layers;
                let Some(leaf) = self.leaf(digest) else {
                    // An index or manifest: docker shows none.
                    return out;
                };
                leaf.stored = true;
                // After the burst (another pull stored it meanwhile): say
                // so now, unless the unpack outcome decides.
                if !holding && !unpack && !hide && leaf.kind == BlobKind::Layer {
                    out.push(Message::update(&short_id(digest), "Already exists"));
                }
                return out;
            }
            _ => self.release(&mut out),
        }
        match event {
            Event::Resolved { reference, .. } if !self.resolved => {
                let Ok(reference) = Reference::parse(reference) else {
                    return out;
                };
                self.resolved = true;
                // moby says the tag when there is one, else the whole
                // reference.
                let tag_or_digest = match reference.tag() {
                    Some(tag) => tag.to_string(),
                    None => reference.to_string(),
                };
                out.push(Message::status(
                    Some(&tag_or_digest),
                    format!("Pulling from {}", reference.repository()),
                ));
            }
            Event::Retrying { digest, delay, .. } if self.is_layer(digest) => {
                let seconds = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
                let seconds = seconds.max(1);
                let plural = if seconds == 1 { "" } else { "s" };
                let message = Message::update(
                    &short_id(digest),
                    format!("Retrying in {seconds} second{plural}"),
                );
                self.layer(&mut out, message);
            }
            Event::Downloading {
                digest,
                kind: BlobKind::Layer,
                current,
                total,
            } => {
                let message = Message::counts(&short_id(digest), "Downloading", *current, *total);
                self.layer(&mut out, message);
            }
            Event::Verifying {
                digest,
                kind: BlobKind::Layer,
            } => self.layer(
                &mut out,
                Message::update(&short_id(digest), "Verifying Checksum"),
            ),
            Event::Done {
                digest,
                kind: BlobKind::Layer,
                ..
            } => {
                let id = short_id(digest);
                self.layer(&mut out, Message::update(&id, "Download complete"));
                if !self.options.unpack {
                    self.layer(&mut out, Message::update(&id, "Pull complete"));
                }
            }
            Event::Extracting {
                digest,
                current,
                total,
            } => {
                let message = Message::counts(&short_id(digest), "Extracting", *current, *total);
                self.layer(&mut out, message);
            }
            Event::LayerUnpacked { digest, .. } => {
                self.layer(
                    &mut out,
                    Message::update(&short_id(digest), "Pull complete"),
                );
            }
            Event::LayerAlreadyUnpacked { digest, .. } => {
                // A layer this pull downloaded whose snapshot existed (the
                // same diffID under another compression) ends like any
                // downloaded layer; only a stored one "already exists".
                let downloaded = self
                    .leaves
                    .iter()
                    .any(|leaf| &leaf.digest == digest && !leaf.stored);
                let status = if downloaded {
                    "Pull complete"
                } else {
                    "Already exists"
                };
                self.layer(&mut out, Message::update(&short_id(digest), status));
            }
            Event::ImageDone {
                name,
                digest,
                up_to_date,
            } => {
                out.push(Message::status(None, format!("Digest: {digest}")));
                let shown = Reference::parse(name).map_or_else(|_| name.clone(), |r| r.familiar());
                out.push(Message::status(
                    None,
                    if *up_to_date {
                        format!("Status: Image is up to date for {shown}")
                    } else {
                        format!("Status: Downloaded newer image for {shown}")
                    },
                ));
            }
            _ => {}
        }
        out
    }

    /// The messages still held when the pull ends.
    pub fn finish(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        self.release(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use hoist_oci::Descriptor;

    use super::*;

    fn digest(c: char) -> Digest {
        Digest::from_str(&format!("sha256:{}", c.to_string().repeat(64))).unwrap()
    }

    fn id(c: char) -> String {
        c.to_string().repeat(12)
    }

    fn resolved(reference: &str) -> Event {
        Event::Resolved {
            reference: reference.to_string(),
            descriptor: Box::new(Descriptor::new(
                "application/vnd.oci.image.manifest.v1+json".into(),
                100,
                digest('f'),
            )),
        }
    }

    fn waiting(c: char, kind: BlobKind) -> Event {
        Event::Waiting {
            digest: digest(c),
            kind,
            size: 10,
        }
    }

    fn exists(c: char, kind: BlobKind) -> Event {
        Event::AlreadyExists {
            digest: digest(c),
            kind,
            size: 10,
        }
    }

    fn done(c: char, kind: BlobKind) -> Event {
        Event::Done {
            digest: digest(c),
            kind,
            size: 10,
        }
    }

    /// Layer `c` unpacked now, as snapshot `chain`.
    fn unpacked(c: char, chain: char) -> Event {
        Event::LayerUnpacked {
            digest: digest(c),
            chain_id: digest(chain),
        }
    }

    /// Layer `c` found unpacked already, as snapshot `chain`.
    fn already_unpacked(c: char, chain: char) -> Event {
        Event::LayerAlreadyUnpacked {
            digest: digest(c),
            chain_id: digest(chain),
        }
    }

    /// Feeds `events` and returns what a non-terminal CLI prints, plus the
    /// messages with counts as `<id>: <status> <current>/<total>`.
    fn run(options: TranslatorOptions, events: &[Event]) -> Vec<String> {
        let mut translator = Translator::new(options);
        let mut messages = Vec::new();
        for event in events {
            messages.extend(translator.event(event));
        }
        messages.extend(translator.finish());
        messages
            .iter()
            .map(|m| match m.plain() {
                Some(line) => line,
                None => {
                    let p = m.progress.unwrap();
                    format!(
                        "{}: {} {}/{}",
                        m.id.as_deref().unwrap(),
                        m.status,
                        p.current,
                        p.total
                    )
                }
            })
            .collect()
    }

    fn image_done(up_to_date: bool) -> Event {
        Event::ImageDone {
            name: "docker.io/library/alpine:latest".into(),
            digest: digest('f'),
            up_to_date,
        }
    }

    #[test]
    fn a_fresh_pull_in_docker_order() {
        let options = TranslatorOptions {
            unpack: true,
            max_concurrent_downloads: 2,
        };
        let lines = run(
            options,
            &[
                Event::Resolving {
                    reference: "docker.io/library/alpine:latest".into(),
                },
                resolved("docker.io/library/alpine:latest"),
                waiting('c', BlobKind::Config),
                waiting('a', BlobKind::Layer),
                waiting('b', BlobKind::Layer),
                Event::Downloading {
                    digest: digest('c'),
                    kind: BlobKind::Config,
                    current: 5,
                    total: 10,
                },
                done('c', BlobKind::Config),
                Event::Downloading {
                    digest: digest('a'),
                    kind: BlobKind::Layer,
                    current: 4,
                    total: 10,
                },
                Event::Retrying {
                    digest: digest('a'),
                    attempt: 2,
                    offset: 4,
                    delay: Duration::from_millis(200),
                },
                Event::Verifying {
                    digest: digest('a'),
                    kind: BlobKind::Layer,
                },
                done('a', BlobKind::Layer),
                done('b', BlobKind::Layer),
                Event::Extracting {
                    digest: digest('a'),
                    current: 10,
                    total: 10,
                },
                unpacked('a', '1'),
                unpacked('b', '2'),
                image_done(false),
            ],
        );
        let (a, b) = (id('a'), id('b'));
        let expected = vec![
            "latest: Pulling from library/alpine".to_string(),
            format!("{a}: Pulling fs layer"),
            format!("{b}: Pulling fs layer"),
            // Config and `a` take the two download slots.
            format!("{b}: Waiting"),
            format!("{a}: Downloading 4/10"),
            format!("{a}: Retrying in 1 second"),
            format!("{a}: Verifying Checksum"),
            format!("{a}: Download complete"),
            format!("{b}: Download complete"),
            format!("{a}: Extracting 10/10"),
            format!("{a}: Pull complete"),
            format!("{b}: Pull complete"),
            format!("Digest: {}", digest('f')),
            "Status: Downloaded newer image for alpine:latest".to_string(),
        ];
        assert_eq!(lines, expected);
    }

    #[test]
    fn an_image_already_present_shows_no_layer_lines() {
        let lines = run(
            TranslatorOptions::default(),
            &[
                resolved("docker.io/library/alpine:latest"),
                exists('e', BlobKind::Manifest),
                waiting('c', BlobKind::Config),
                waiting('a', BlobKind::Layer),
                exists('c', BlobKind::Config),
                exists('a', BlobKind::Layer),
                already_unpacked('a', '1'),
                image_done(true),
            ],
        );
        assert_eq!(
            lines,
            vec![
                "latest: Pulling from library/alpine".to_string(),
                format!("Digest: {}", digest('f')),
                "Status: Image is up to date for alpine:latest".to_string(),
            ]
        );
    }

    #[test]
    fn stored_layers_say_already_exists_beside_downloads() {
        let events = [
            resolved("127.0.0.1:5000/team/app:1.0"),
            waiting('c', BlobKind::Config),
            waiting('a', BlobKind::Layer),
            waiting('b', BlobKind::Layer),
            exists('a', BlobKind::Layer),
            done('c', BlobKind::Config),
            done('b', BlobKind::Layer),
            already_unpacked('a', '1'),
            unpacked('b', '2'),
            image_done(false),
        ];
        let (a, b) = (id('a'), id('b'));
        let unpacking = run(TranslatorOptions::default(), &events);
        assert_eq!(
            unpacking[..5],
            [
                "1.0: Pulling from team/app".to_string(),
                format!("{b}: Pulling fs layer"),
                format!("{b}: Download complete"),
                format!("{a}: Already exists"),
                format!("{b}: Pull complete"),
            ]
        );
        let stored_only = run(
            TranslatorOptions {
                unpack: false,
                max_concurrent_downloads: 3,
            },
            &events[..7],
        );
        assert_eq!(
            stored_only,
            [
                "1.0: Pulling from team/app".to_string(),
                format!("{a}: Already exists"),
                format!("{b}: Pulling fs layer"),
                format!("{b}: Download complete"),
                format!("{b}: Pull complete"),
            ]
        );
    }

    #[test]
    fn a_downloaded_layer_whose_snapshot_exists_completes() {
        let a = id('a');
        let lines = run(
            TranslatorOptions::default(),
            &[
                resolved("127.0.0.1:5000/team/app:zstd"),
                waiting('c', BlobKind::Config),
                waiting('a', BlobKind::Layer),
                done('c', BlobKind::Config),
                done('a', BlobKind::Layer),
                already_unpacked('a', '1'),
            ],
        );
        assert_eq!(
            lines[1..],
            [
                format!("{a}: Pulling fs layer"),
                format!("{a}: Download complete"),
                format!("{a}: Pull complete"),
            ]
        );
    }

    #[test]
    fn a_digest_reference_stands_for_the_tag() {
        let reference = format!("docker.io/library/alpine@{}", digest('d'));
        let mut translator = Translator::new(TranslatorOptions::default());
        assert!(!translator.resolved());
        let messages = translator.event(&resolved(&reference));
        assert!(translator.resolved());
        assert_eq!(
            messages[0].plain().unwrap(),
            format!("{reference}: Pulling from library/alpine")
        );
    }

    #[test]
    fn wire_format_matches_moby() {
        assert_eq!(
            Message::status(Some("latest"), "Pulling from library/alpine").to_json(),
            r#"{"status":"Pulling from library/alpine","id":"latest"}"#
        );
        assert_eq!(
            Message::update("0123456789ab", "Pull complete").to_json(),
            r#"{"status":"Pull complete","progressDetail":{},"id":"0123456789ab"}"#
        );
        let downloading = Message::counts("0123456789ab", "Downloading", 1_234_567, 3_400_000);
        let json: serde_json::Value = serde_json::from_str(&downloading.to_json()).unwrap();
        assert_eq!(json["progressDetail"]["current"], 1_234_567);
        assert_eq!(json["progressDetail"]["total"], 3_400_000);
        assert_eq!(
            json["progress"],
            format!("[{}>{}]  1.235MB/3.4MB", "=".repeat(18), " ".repeat(32))
        );
        assert_eq!(downloading.plain(), None);
        let error = Message::error("pull access denied");
        assert_eq!(
            error.to_line(),
            "{\"errorDetail\":{\"message\":\"pull access denied\"},\"error\":\"pull access denied\"}\r\n"
        );
        assert_eq!(error.plain(), None);
    }

    #[test]
    fn sizes_render_like_go_units() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1000), "1kB");
        assert_eq!(human_size(1500), "1.5kB");
        assert_eq!(human_size(65_536), "65.54kB");
        assert_eq!(human_size(999_960), "1000kB");
        assert_eq!(human_size(3_400_000), "3.4MB");
        assert_eq!(human_size(65_612), "65.61kB");
        assert_eq!(human_size(65_727), "65.73kB");
        assert_eq!(human_size(123_456), "123.5kB");
        assert_eq!(human_size(1_234_567), "1.235MB");
        assert_eq!(human_size(999_950), "1000kB");
        let full = ProgressDetail {
            current: 10,
            total: 10,
        };
        assert_eq!(
            full.render(),
            format!("[{}>] {:>8}/10B", "=".repeat(50), "10B")
        );
        let unknown_total = ProgressDetail {
            current: 2048,
            total: 0,
        };
        assert_eq!(unknown_total.render(), " 2.048kB");
    }
}
