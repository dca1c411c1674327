//! The listings of the `ls` commands: a table with a header line, or with
//! `--quiet` the identifiers alone, one per line.

#![allow(clippy::print_stdout, reason = "listings go to stdout")]

use hoist_engine::Labels;

/// `items` as `ls` prints them: `id` of each with `quiet`, else a table of
/// `header` and one `row` per item.
pub(crate) fn print_listing<T>(
    items: Vec<T>,
    quiet: bool,
    id: impl Fn(&T) -> String,
    header: &[&str],
    row: impl Fn(T) -> Vec<String>,
) {
    if quiet {
        for item in &items {
            println!("{}", id(item));
        }
    } else {
        print_table(header, items.into_iter().map(row).collect());
    }
}

/// Labels as one column: `key=value` pairs joined by commas.
pub(crate) fn labels_column(labels: &Labels) -> String {
    labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Left-aligned columns separated by two spaces, like `ctr` and `docker`.
pub(crate) fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        println!("{}", out.trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}
