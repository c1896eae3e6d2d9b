//! The interactive prompt: with no -c or -f and a terminal on stdin, statements are read line
//! by line with history (a statement ends with `;`, and may span lines), and each runs once it
//! is complete. An error is printed and the prompt goes on; `\q`, `quit`, `exit` or Ctrl-D
//! end it, and Ctrl-C drops the statement being typed.

use std::path::PathBuf;

use datafusion::prelude::SessionContext;
use rustyline::DefaultEditor;
use rustyline::error::ReadlineError;

use crate::report::Failure;
use crate::run::{Reporting, run_sql};

/// Runs the prompt until it is ended.
pub(crate) async fn run(ctx: &SessionContext, reporting: &Reporting) -> Result<(), Failure> {
    let mut editor = DefaultEditor::new().map_err(|e| Failure::new(format!("cannot open the prompt: {e}")))?;
    let history = history_file();
    if let Some(path) = &history {
        // A missing history file is the first session.
        let _ = editor.load_history(path);
    }
    let mut statement = String::new();
    loop {
        let prompt = if statement.is_empty() { "dfbq> " } else { "   -> " };
        match tokio::task::block_in_place(|| editor.readline(prompt)) {
            Ok(line) => {
                if statement.is_empty() && matches!(line.trim(), "\\q" | "quit" | "exit") {
                    break;
                }
                statement.push_str(&line);
                statement.push('\n');
                if ends_a_statement(&statement) {
                    let sql = std::mem::take(&mut statement);
                    let _ = editor.add_history_entry(sql.trim_end());
                    if let Err(failure) = run_sql(ctx, reporting, "prompt", &sql).await {
                        eprintln!("{failure}");
                    }
                }
            }
            Err(ReadlineError::Interrupted) => statement.clear(),
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(Failure::new(format!("cannot read from the prompt: {e}"))),
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    Ok(())
}

/// `~/.datafusion_bigquery_history`, where the home directory is known.
fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".datafusion_bigquery_history"))
}

/// True when the last character of `sql` outside quotes and comments is `;`.
fn ends_a_statement(sql: &str) -> bool {
    let mut last = None;
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => {
                    quote = Some(c);
                    last = Some(c);
                }
                '-' if chars.peek() == Some(&'-') => {
                    // A comment runs to the end of its line.
                    for rest in chars.by_ref() {
                        if rest == '\n' {
                            break;
                        }
                    }
                }
                c if c.is_whitespace() => {}
                c => last = Some(c),
            },
        }
    }
    quote.is_none() && last == Some(';')
}

#[cfg(test)]
mod tests {
    use super::ends_a_statement;

    #[test]
    fn a_statement_ends_with_a_semicolon_outside_quotes_and_comments() {
        assert!(ends_a_statement("SELECT 1;"));
        assert!(ends_a_statement("SELECT 1\n  ;  \n"));
        assert!(ends_a_statement("SELECT 1; -- done\n"));
        assert!(!ends_a_statement("SELECT 1"));
        assert!(!ends_a_statement("SELECT 'a;\n"), "inside a string");
        assert!(ends_a_statement("SELECT 'a;\nb';"));
        assert!(!ends_a_statement("SELECT 1 -- not yet;\n"), "inside a comment");
        assert!(!ends_a_statement(""));
    }
}
