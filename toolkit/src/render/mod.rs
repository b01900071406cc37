//! All output of the toolkit: text for people, JSON for programs (and
//! Markdown for `audit`). `Renderer` carries the chosen `--output`; each
//! command group adds its methods in its own file. Only this module prints
//! results to standard output.

mod audit_log;
mod backup;
mod dr;
mod integrity;
mod plan;
mod recovery;
mod restore;
mod retention;
pub mod schedules;
mod snapshots;
mod verify;

use serde::Serialize;

use crate::cli::Output;

/// Renders command results in the output format chosen by `--output`.
pub struct Renderer {
    output: Output,
}

impl Renderer {
    pub fn new(output: Output) -> Self {
        Self { output }
    }

    pub fn is_text(&self) -> bool {
        self.output == Output::Text
    }

    pub fn is_json(&self) -> bool {
        self.output == Output::Json
    }
}

/// A value as pretty JSON on standard output.
pub fn json<T: Serialize>(value: &T) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("lifeboat: cannot render JSON: {e}"),
    }
}

/// Lines on standard output.
fn print_lines(lines: &[String]) {
    for line in lines {
        println!("{line}");
    }
}

/// 1536 → "1.5 KiB".
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Columns padded to their widest cell, two spaces apart.
fn table_lines<const N: usize>(header: &[&str; N], rows: &[[String; N]]) -> Vec<String> {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(rows.iter().map(|row| line(row.iter().map(String::as_str).collect())));
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_are_human() {
        for (n, text) in [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (64 << 20, "64.0 MiB")] {
            assert_eq!(super::bytes(n), text);
        }
    }

    #[test]
    fn tables_pad_columns_to_the_widest_cell() {
        let rows = [
            ["OK".to_owned(), "a".to_owned(), "last".to_owned()],
            ["BREACHED".to_owned(), "longer".to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            super::table_lines(&["STATE", "PLAN", "END"], &rows),
            ["STATE     PLAN    END", "OK        a       last", "BREACHED  longer  x"]
        );
    }
}
