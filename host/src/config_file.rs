//! `--config FILE`: the command line's flags as TOML keys of the same
//! names (`max-frame-size = "16MiB"`), plus `app` and `log-format`.
//!
//! The file is turned into flags and checked by the command line's own
//! parsers, so a key accepts exactly what its flag accepts. Flags given on
//! the command line win over the file. Every problem (syntax, unknown key,
//! wrong type, bad value) names the file, the line and the key. Relative
//! paths in the file are relative to the file's directory.
//!
//! [`effective_toml`] renders the configuration in force (defaults
//! included, each key with its help as a comment): `host config`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, CommandFactory as _, FromArgMatches as _};
use thiserror::Error;

use crate::cli::Cli;

/// Keys whose relative values are taken relative to the file.
const PATH_KEYS: &[&str] = &["app", "cache-dir", "static", "tls-cert", "tls-key"];

/// Why a configuration file could not be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// It could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// It is not valid TOML.
    #[error("{path}:{line}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A key that is no flag of `host serve`.
    #[error("{path}:{line}: unknown key `{key}`{hint}")]
    UnknownKey {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// The key.
        key: String,
        /// A suggestion, or nothing.
        hint: String,
    },
    /// A value of the wrong TOML type.
    #[error("{path}:{line}: `{key}`: expected {expected}, found {found}")]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// The key.
        key: String,
        /// What the key takes.
        expected: &'static str,
        /// The TOML type found.
        found: &'static str,
    },
    /// A value its flag's parser refuses.
    #[error("{path}:{line}: `{key}`: {message}")]
    BadValue {
        /// The file.
        path: PathBuf,
        /// The line (from 1).
        line: usize,
        /// The key.
        key: String,
        /// Why, from the flag's parser.
        message: String,
    },
    /// The command line itself, with the file's flags, does not parse.
    #[error(transparent)]
    CommandLine(#[from] clap::Error),
}

/// Parse the command line `argv` (program name first), with the flags of
/// the `--config` file, if one is given, under those of the command line.
pub fn resolve(argv: &[OsString]) -> Result<Cli, ConfigError> {
    let matches = Cli::command().try_get_matches_from(merged_argv(argv)?)?;
    Ok(Cli::from_arg_matches(&matches)?)
}

/// `argv` with the `--config` file's flags inserted right after the
/// subcommand's name: the command line's own follow, and none is given
/// twice (a key given on the command line is skipped).
fn merged_argv(argv: &[OsString]) -> Result<Vec<OsString>, ConfigError> {
    let matches = Cli::command().try_get_matches_from(argv)?;
    let Some((name, sub)) = matches.subcommand() else {
        return Ok(argv.to_vec());
    };
    let Some(path) = sub.try_get_one::<PathBuf>("config").ok().flatten() else {
        return Ok(argv.to_vec());
    };
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let file_args = file_flags(path, &text, &matches, name)?;
    let at = argv
        .iter()
        .position(|arg| arg.to_str() == Some(name))
        .map_or(argv.len(), |i| i + 1);
    let mut merged = argv[..at].to_vec();
    merged.extend(file_args);
    merged.extend_from_slice(&argv[at..]);
    Ok(merged)
}

/// The file's keys as flags, each checked by its flag's parser.
fn file_flags(
    path: &Path,
    text: &str,
    matches: &ArgMatches,
    subcommand: &str,
) -> Result<Vec<OsString>, ConfigError> {
    let table: toml::Table = toml::from_str(text).map_err(|error| {
        let line = error.span().map_or(1, |span| line_of(text, span.start));
        // The key, when the line has one (`key = <bad>`).
        let key = text
            .lines()
            .nth(line - 1)
            .and_then(|l| l.split_once('='))
            .map(|(key, _)| key.trim().trim_matches('"'))
            .filter(|key| !key.is_empty() && !key.starts_with(['#', '[']))
            .map(|key| format!("`{key}`: "))
            .unwrap_or_default();
        ConfigError::Syntax {
            path: path.to_owned(),
            line,
            message: format!("{key}{}", error.message().trim()),
        }
    })?;
    // Keys in the order they appear, with their lines.
    let mut entries: Vec<(usize, &String, &toml::Value)> = table
        .iter()
        .map(|(key, value)| (key_line(text, key), key, value))
        .collect();
    entries.sort_by_key(|(line, ..)| *line);

    let command = Cli::command();
    let serve = command
        .find_subcommand(subcommand)
        .unwrap_or(&command)
        .clone();
    let sub = matches.subcommand_matches(subcommand).unwrap_or(matches);
    let base = path.parent().unwrap_or(Path::new(""));
    let mut flags = Vec::new();
    for (line, key, value) in entries {
        let at = |message: String| ConfigError::BadValue {
            path: path.to_owned(),
            line,
            key: key.clone(),
            message,
        };
        if key == "config" {
            return Err(at("a configuration file cannot name another".into()));
        }
        let (arg, given) = if key == "log-format" {
            let arg = command
                .get_arguments()
                .find(|a| a.get_long() == Some("log-format"));
            (arg, matches.value_source("log_format"))
        } else {
            let arg = serve
                .get_arguments()
                .find(|a| arg_key(a) == Some(key.as_str()));
            (arg, arg.and_then(|a| sub.value_source(a.get_id().as_str())))
        };
        let Some(arg) = arg else {
            return Err(ConfigError::UnknownKey {
                path: path.to_owned(),
                line,
                key: key.clone(),
                hint: suggestion(key, &serve),
            });
        };
        if given == Some(ValueSource::CommandLine) {
            continue;
        }
        let wrong = |expected| ConfigError::WrongType {
            path: path.to_owned(),
            line,
            key: key.clone(),
            expected,
            found: value.type_str(),
        };
        let fragment: Vec<OsString> = match arg.get_action() {
            ArgAction::SetTrue => match value {
                toml::Value::Boolean(true) => vec![format!("--{key}").into()],
                toml::Value::Boolean(false) => Vec::new(),
                _ => return Err(wrong("a boolean")),
            },
            ArgAction::Append => {
                let items: Vec<&str> = match value {
                    toml::Value::Array(items) => items
                        .iter()
                        .map(|item| item.as_str().ok_or_else(|| wrong("an array of strings")))
                        .collect::<Result<_, _>>()?,
                    toml::Value::String(one) => vec![one.as_str()],
                    _ => return Err(wrong("an array of strings")),
                };
                if items.iter().any(|item| item.contains(',')) {
                    return Err(at("an item may not contain a comma".into()));
                }
                vec![format!("--{key}").into(), items.join(",").into()]
            }
            _ => {
                let text = match value {
                    toml::Value::String(text) => text.clone(),
                    toml::Value::Integer(n) => n.to_string(),
                    toml::Value::Float(x) => x.to_string(),
                    toml::Value::Boolean(b) => b.to_string(),
                    _ => return Err(wrong("a string, number or boolean")),
                };
                let text: OsString = if PATH_KEYS.contains(&key.as_str()) {
                    base.join(&text).into_os_string()
                } else {
                    text.into()
                };
                if arg.is_positional() {
                    vec![text]
                } else {
                    vec![format!("--{key}").into(), text]
                }
            }
        };
        check_value(&command, subcommand, key, &fragment).map_err(at)?;
        flags.extend(fragment);
    }
    Ok(flags)
}

/// The key of a flag (its long name) or of the positional `app`.
fn arg_key(arg: &Arg) -> Option<&str> {
    if arg.is_positional() {
        Some(arg.get_id().as_str())
    } else {
        arg.get_long()
            .filter(|long| !matches!(*long, "help" | "version" | "config"))
    }
}

/// Run one key's flags through the command line's parser alone, so a bad
/// value is reported with its key and line.
fn check_value(
    command: &clap::Command,
    subcommand: &str,
    key: &str,
    fragment: &[OsString],
) -> Result<(), String> {
    let mut argv: Vec<OsString> = vec!["host".into(), subcommand.into()];
    argv.extend_from_slice(fragment);
    match command.clone().try_get_matches_from(argv) {
        Ok(_) => Ok(()),
        // Alone, a key that needs another (tls-cert and tls-key) misses
        // it: the whole command line checks that.
        Err(error) if error.kind() == clap::error::ErrorKind::MissingRequiredArgument => Ok(()),
        Err(error) => Err(match std::error::Error::source(&error) {
            Some(source) => source.to_string(),
            None => {
                let text = error.to_string();
                let first = text.lines().next().unwrap_or("invalid value");
                first.trim_start_matches("error: ").to_owned()
            }
        }
        .replace(&format!("'--{key} <"), "'<")),
    }
}

/// ` (did you mean `x`?)` for a key close to a known one.
fn suggestion(key: &str, serve: &clap::Command) -> String {
    let normalized = key.replace('_', "-").to_ascii_lowercase();
    serve
        .get_arguments()
        .filter_map(arg_key)
        .chain(["log-format"])
        .find(|known| *known == normalized || known.starts_with(&normalized))
        .map(|known| format!(" (did you mean `{known}`?)"))
        .unwrap_or_default()
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text.get(..at).unwrap_or(text).matches('\n').count() + 1
}

/// The line where top-level `key` is set (first line that starts with it,
/// bare or quoted, followed by `=`).
fn key_line(text: &str, key: &str) -> usize {
    text.lines()
        .position(|line| {
            let line = line.trim_start();
            let rest = line
                .strip_prefix(key)
                .or_else(|| line.strip_prefix(&format!("\"{key}\"")));
            rest.is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

/// The configuration in force as a TOML file: every key of `host serve`
/// in the order of `host serve --help`, its help as a comment, the value
/// from the command line, the file or the default. Keys without a value
/// are commented out.
pub fn effective_toml(argv: &[OsString]) -> Result<String, ConfigError> {
    let command = Cli::command();
    let matches = command.clone().try_get_matches_from(merged_argv(argv)?)?;
    let (name, sub) = matches
        .subcommand()
        .ok_or_else(|| clap::Error::new(clap::error::ErrorKind::MissingSubcommand))?;
    let serve = command.find_subcommand(name).unwrap_or(&command);
    let mut out = String::from(
        "# wsbox configuration (`host serve --config FILE`); keys are the flags of\n\
         # `host serve --help`; flags on the command line win over the file.\n",
    );
    let log_format = command
        .get_arguments()
        .find(|a| a.get_long() == Some("log-format"));
    let args = log_format
        .map(|a| (a, &matches))
        .into_iter()
        .chain(serve.get_arguments().map(|a| (a, sub)));
    for (arg, matches) in args {
        let Some(key) = arg_key(arg) else { continue };
        if let Some(help) = arg.get_help() {
            for line in wrap(&help.to_string(), 76) {
                out.push_str("# ");
                out.push_str(&line);
                out.push('\n');
            }
        }
        let id = arg.get_id().as_str();
        let value = match arg.get_action() {
            ArgAction::SetTrue => Some(toml::Value::Boolean(matches.get_flag(id))),
            ArgAction::Append => Some(toml::Value::Array(
                matches
                    .get_raw(id)
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.to_str())
                    .filter(|v| !v.is_empty())
                    .map(|v| toml::Value::String(v.to_owned()))
                    .collect(),
            )),
            _ => matches
                .get_raw(id)
                .and_then(|mut values| values.next())
                .and_then(|v| v.to_str())
                .map(scalar),
        };
        match value {
            Some(value) => out.push_str(&format!("{key} = {value}\n\n")),
            None => out.push_str(&format!("# {key} =\n\n")),
        }
    }
    // No blank line after the last key.
    out.pop();
    Ok(out)
}

/// A raw flag value as the TOML value it reads best as: integers and
/// booleans bare, everything else a string.
fn scalar(raw: &str) -> toml::Value {
    if let Ok(n) = raw.parse::<i64>() {
        toml::Value::Integer(n)
    } else if let Ok(b) = raw.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(raw.to_owned())
    }
}

/// `text` in lines of at most `width` characters (words kept whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}
