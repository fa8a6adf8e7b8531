//! The report page: a summary table, then per old release its figures and a map of the image,
//! one square per cell, in rows of [`COLUMNS`] from the start of the image: red where chunks
//! are fetched (the more of the cell, the darker), green where they are reused or copied, grey
//! where they are all zeros. Plain HTML and inline SVG; every name is escaped.

use super::{Comparison, Release, Shares};
use crate::tune::format_sizes;
use std::fmt::Write;

/// Cells per row of the map.
const COLUMNS: u64 = 64;
/// Side of a cell and the gap after it, in pixels.
const CELL: u64 = 11;
const GAP: u64 = 1;

/// Inline style: the colours of the map and a readable table.
const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin:1em 0}\
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right}\
th:first-child,td:first-child{text-align:left}\
.f{fill:#c62828}.r{fill:#2e7d32}.z{fill:#bdbdbd}\
.legend span{display:inline-block;width:1em;height:1em;margin:0 .3em 0 1em;vertical-align:middle}\
.note{color:#8a4b00}";

/// The whole page for `new` against each comparison.
pub(super) fn page(new: &Release<'_>, comparisons: &[Comparison]) -> String {
    let index = new.index;
    let name = escape(&new.name);
    let mut out = String::with_capacity(64 << 10);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Update report: {name}</title><style>{STYLE}</style></head><body>\n\
         <h1>Update report: {name}</h1>\n\
         <p id=\"release\">{name}: <b>{}</b> bytes in {} chunks (chunk sizes {}, {}), \
         index <b>{}</b> bytes.</p>\n",
        group(index.blob_size()),
        group(index.chunks.len() as u64),
        format_sizes(index.header.sizes),
        index.header.digest().name(),
        group(new.index_bytes)
    );
    out += "<p>Download: what a device holding the old release fetches to install this one, \
            the index included (MB = 10<sup>6</sup> bytes); one request per chunk.</p>\n";
    out += "<table id=\"summary\"><tr><th>from</th><th>download bytes</th><th>MB</th>\
            <th>index bytes</th><th>chunk bytes</th><th>requests</th><th>image reused</th></tr>\n";
    for c in comparisons {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:.2}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td>{}</td></tr>",
            escape(&c.old),
            group(c.download()),
            c.download() as f64 / 1e6,
            group(c.index_bytes),
            group(c.chunk_bytes),
            group(c.requests),
            percent(
                c.shares.reused + c.shares.copied + c.shares.zero,
                c.shares.total()
            )
        );
    }
    out += "</table>\n";
    for (k, c) in comparisons.iter().enumerate() {
        section(&mut out, &name, k, c);
    }
    out += "</body></html>\n";
    out
}

/// One old release: figures, notes, map and legend.
fn section(out: &mut String, new: &str, k: usize, c: &Comparison) {
    let s = &c.shares;
    let _ = write!(
        out,
        "<h2>{} &rarr; {new}</h2>\n<p class=\"figures\">Download <b>{}</b> bytes \
         ({:.2} MB): index {} + chunks {} in {} requests. Of the image's {} bytes: {} fetched, \
         {} reused from {}, {} copied within the image, {} all zeros.</p>\n",
        escape(&c.old),
        group(c.download()),
        c.download() as f64 / 1e6,
        group(c.index_bytes),
        group(c.chunk_bytes),
        group(c.requests),
        group(s.total()),
        group(s.fetched),
        group(s.reused),
        escape(&c.old),
        group(s.copied),
        group(s.zero)
    );
    if let Some(sizes) = c.other_sizes {
        let _ = writeln!(
            out,
            "<p class=\"note\">The old index was made with chunk sizes {}: a device cuts its \
             slot with the new sizes and may reuse more than shown.</p>",
            format_sizes(sizes)
        );
    }
    if c.other_digest {
        out.push_str(
            "<p class=\"note\">The old index names chunks with another digest: nothing of it \
             is reused.</p>\n",
        );
    }
    if c.not_in_stores > 0 {
        let _ = writeln!(
            out,
            "<p class=\"note\">{} fetched chunks are in no store; they are counted \
             uncompressed.</p>",
            group(c.not_in_stores)
        );
    }
    map(out, k, &c.cells, s.total());
    out.push_str(
        "<p class=\"legend\"><span style=\"background:#c62828\"></span>fetched \
         (darker: more of the cell)<span style=\"background:#2e7d32\"></span>reused or \
         copied<span style=\"background:#bdbdbd\"></span>all zeros</p>\n",
    );
}

/// The SVG map of the cells.
fn map(out: &mut String, k: usize, cells: &[Shares], size: u64) {
    let count = cells.len() as u64;
    let rows = count.div_ceil(COLUMNS).max(1);
    let (width, height) = (COLUMNS * (CELL + GAP), rows * (CELL + GAP));
    let _ = writeln!(
        out,
        "<svg id=\"map{k}\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" \
         height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\">\
         <title>Which regions of the image are fetched, reused or all zeros</title>"
    );
    let mut start = 0u64;
    for (i, cell) in cells.iter().enumerate() {
        let i = i as u64;
        let end = start + cell.total();
        let (x, y) = ((i % COLUMNS) * (CELL + GAP), (i / COLUMNS) * (CELL + GAP));
        let (class, opacity) = if cell.fetched > 0 {
            // Visible however little is fetched; solid when all of it is.
            let share = cell.fetched as f64 / cell.total().max(1) as f64;
            ("f", 0.35 + 0.65 * share)
        } else if cell.zero == cell.total() {
            ("z", 1.0)
        } else {
            ("r", 1.0)
        };
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{y}\" width=\"{CELL}\" height=\"{CELL}\" class=\"{class}\" \
             fill-opacity=\"{opacity:.2}\"><title>bytes {start}-{end}: {} fetched, {} \
             reused, {} copied, {} zeros</title></rect>",
            cell.fetched, cell.reused, cell.copied, cell.zero
        );
        start = end;
    }
    let _ = writeln!(
        out,
        "</svg>\n<p>Each square: {} bytes of the image.</p>",
        group(size / count.max(1))
    );
}

/// `1234567` as `1,234,567`.
pub(super) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// `part` of `whole` as a percentage with one decimal.
fn percent(part: u64, whole: u64) -> String {
    match whole {
        0 => "-".into(),
        w => format!("{:.1} %", part as f64 * 100.0 / w as f64),
    }
}

/// Text made safe for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(1000), "1,000");
        assert_eq!(group(13_912_345), "13,912,345");
    }

    #[test]
    fn names_are_escaped() {
        assert_eq!(
            escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
    }
}
