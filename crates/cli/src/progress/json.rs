//! `--progress=json`: one JSON object per line on stdout for each event, then
//! one for the result (or the error), for programs to read.
//!
//! The schema is stable: fields are only ever added. Every object has
//! `event`, in snake_case; the other fields, also snake_case, by event:
//!
//! | `event`                  | fields                                                        |
//! |--------------------------|---------------------------------------------------------------|
//! | `resolving`              | `reference`                                                   |
//! | `resolved`               | `reference`, `digest`, `media_type`, `size`                   |
//! | `waiting`                | `digest`, `kind`, `size`                                      |
//! | `downloading`            | `digest`, `kind`, `current`, `total`                          |
//! | `fetching`               | `digest`, `kind`, `host`                                      |
//! | `retrying`               | `digest`, `kind`, `attempt`, `offset`, `delay_ms`             |
//! | `verifying`              | `digest`, `kind`                                              |
//! | `done`                   | `digest`, `kind`, `size`                                      |
//! | `already_exists`         | `digest`, `kind`, `size`                                      |
//! | `extracting`             | `digest`, `kind`, `current`, `total`                          |
//! | `layer_unpacked`         | `digest`, `kind`, `chain_id`                                  |
//! | `layer_already_unpacked` | `digest`, `kind`, `chain_id`                                  |
//! | `image_done`             | `name`, `digest`, `up_to_date`                                |
//! | `pulled` (the result)    | `name`, `digest`, `media_type`, `size`, `blobs`, `downloaded`, `snapshotter` (string or null), `chain_ids` (array) |
//! | `error` (the pull failed)| `message`                                                     |
//! | `interrupted` (Ctrl-C)   | (none)                                                        |
//!
//! - `digest`, `chain_id`: `sha256:<hex>`. `kind`: `index`, `manifest`,
//!   `config`, `layer` or `other` (a `retrying` blob whose kind was never
//!   announced has `other`).
//! - `current`, `total`, `size`, `offset`, `downloaded`: bytes.
//!   `downloading.current` counts stored bytes, including a resumed prefix;
//!   `extracting` counts compressed bytes of the layer read so far.
//! - `attempt`: the attempt about to start (2 for the first retry);
//!   `delay_ms`: the wait before it, in milliseconds.
//! - `up_to_date`: the name already pointed at this digest and nothing was
//!   downloaded.
//! - `blobs`: how many blobs the image has for the chosen platforms;
//!   `chain_ids`: the top snapshot of each unpacked manifest.
//!
//! Every line is written whole and flushed, so a reader may act on each.

#![allow(clippy::print_stdout, reason = "the JSON renderer prints events")]

use std::collections::HashMap;

use hoist_engine::{BlobKind, Event, Pulled};
use hoist_oci::Digest;
use serde::Serialize;

use super::{Renderer, kind_name};

/// One line of output. The explicit structs are the schema; `Debug` of the
/// engine's types never leaks into it.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Line<'a> {
    Resolving {
        reference: &'a str,
    },
    Resolved {
        reference: &'a str,
        digest: String,
        media_type: String,
        size: u64,
    },
    Waiting {
        digest: String,
        kind: &'static str,
        size: u64,
    },
    Downloading {
        digest: String,
        kind: &'static str,
        current: u64,
        total: u64,
    },
    Fetching {
        digest: String,
        kind: &'static str,
        host: String,
    },
    Retrying {
        digest: String,
        kind: &'static str,
        attempt: u32,
        offset: u64,
        delay_ms: u64,
    },
    Verifying {
        digest: String,
        kind: &'static str,
    },
    Done {
        digest: String,
        kind: &'static str,
        size: u64,
    },
    AlreadyExists {
        digest: String,
        kind: &'static str,
        size: u64,
    },
    Extracting {
        digest: String,
        kind: &'static str,
        current: u64,
        total: u64,
    },
    LayerUnpacked {
        digest: String,
        kind: &'static str,
        chain_id: String,
    },
    LayerAlreadyUnpacked {
        digest: String,
        kind: &'static str,
        chain_id: String,
    },
    ImageDone {
        name: &'a str,
        digest: String,
        up_to_date: bool,
    },
    Pulled {
        name: &'a str,
        digest: String,
        media_type: String,
        size: u64,
        blobs: usize,
        downloaded: u64,
        snapshotter: Option<&'a str>,
        chain_ids: Vec<String>,
    },
    Error {
        message: String,
    },
    Interrupted,
}

/// The JSON renderer.
pub(crate) struct Json {
    kinds: HashMap<Digest, BlobKind>,
}

impl Json {
    pub(crate) fn new() -> Json {
        Json {
            kinds: HashMap::new(),
        }
    }
}

fn emit(line: &Line<'_>) {
    match serde_json::to_string(line) {
        // stdout is line-buffered: each object leaves whole.
        Ok(text) => println!("{text}"),
        Err(error) => tracing::warn!(%error, "could not encode a progress line"),
    }
}

impl Renderer for Json {
    fn event(&mut self, event: &Event) {
        const LAYER: &str = "layer";
        let line = match event {
            Event::Resolving { reference } => Line::Resolving { reference },
            Event::Resolved {
                reference,
                descriptor,
            } => Line::Resolved {
                reference,
                digest: descriptor.digest().to_string(),
                media_type: descriptor.media_type().to_string(),
                size: descriptor.size(),
            },
            Event::Waiting { digest, kind, size } => {
                self.kinds.insert(digest.clone(), *kind);
                Line::Waiting {
                    digest: digest.to_string(),
                    kind: kind_name(*kind),
                    size: *size,
                }
            }
            Event::Downloading {
                digest,
                kind,
                current,
                total,
            } => Line::Downloading {
                digest: digest.to_string(),
                kind: kind_name(*kind),
                current: *current,
                total: *total,
            },
            Event::Fetching { digest, kind, host } => Line::Fetching {
                digest: digest.to_string(),
                kind: kind_name(*kind),
                host: host.clone(),
            },
            Event::Retrying {
                digest,
                attempt,
                offset,
                delay,
            } => Line::Retrying {
                digest: digest.to_string(),
                kind: self.kinds.get(digest).map_or("other", |k| kind_name(*k)),
                attempt: *attempt,
                offset: *offset,
                delay_ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            },
            Event::Verifying { digest, kind } => Line::Verifying {
                digest: digest.to_string(),
                kind: kind_name(*kind),
            },
            Event::Done { digest, kind, size } => Line::Done {
                digest: digest.to_string(),
                kind: kind_name(*kind),
                size: *size,
            },
            Event::AlreadyExists { digest, kind, size } => Line::AlreadyExists {
                digest: digest.to_string(),
                kind: kind_name(*kind),
                size: *size,
            },
            Event::Extracting {
                digest,
                current,
                total,
            } => Line::Extracting {
                digest: digest.to_string(),
                kind: LAYER,
                current: *current,
                total: *total,
            },
            Event::LayerUnpacked { digest, chain_id } => Line::LayerUnpacked {
                digest: digest.to_string(),
                kind: LAYER,
                chain_id: chain_id.to_string(),
            },
            Event::LayerAlreadyUnpacked { digest, chain_id } => Line::LayerAlreadyUnpacked {
                digest: digest.to_string(),
                kind: LAYER,
                chain_id: chain_id.to_string(),
            },
            Event::ImageDone {
                name,
                digest,
                up_to_date,
            } => Line::ImageDone {
                name,
                digest: digest.to_string(),
                up_to_date: *up_to_date,
            },
            _ => return,
        };
        emit(&line);
    }

    fn finish(&mut self, pulled: &Pulled) {
        emit(&Line::Pulled {
            name: &pulled.name,
            digest: pulled.target.digest().to_string(),
            media_type: pulled.target.media_type().to_string(),
            size: pulled.target.size(),
            blobs: pulled.blobs,
            downloaded: pulled.downloaded,
            snapshotter: pulled.snapshotter.as_deref(),
            chain_ids: pulled.chain_ids.iter().map(ToString::to_string).collect(),
        });
    }

    fn fail(&mut self, error: &anyhow::Error) {
        emit(&Line::Error {
            message: format!("{error:#}"),
        });
    }

    fn interrupt(&mut self) {
        emit(&Line::Interrupted);
    }
}
