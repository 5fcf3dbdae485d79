//! The guard between a plain dump and psql: the dump's lines followed as SQL or COPY data, its
//! own `\restrict`/`\unrestrict` lines blanked behind ours, and the roles it names.

use std::io::{BufRead, Read};

/// Follows a plain dump line by line and tells SQL from COPY data (`COPY ... FROM stdin;` up
/// to the `\.` line), which must never be read as SQL or meta-commands.
#[derive(Default)]
struct CopyData {
    inside: bool,
}

impl CopyData {
    /// Feed the next line; true when it is SQL (not COPY data, not the COPY statement).
    fn is_sql(&mut self, line: &[u8]) -> bool {
        if self.inside {
            self.inside = line.trim_ascii_end() != b"\\.";
            return false;
        }
        if line.starts_with(b"COPY ") && line.trim_ascii_end().ends_with(b"FROM stdin;") {
            self.inside = true;
            return false;
        }
        true
    }
}

/// A plain dump as psql should see it: `\restrict KEY` first, and the dump's own
/// `\restrict`/`\unrestrict` lines (outside COPY data) blanked, so none can lift the restriction.
/// Blank lines keep psql's line numbers one off from the file's (see `restore_error`).
pub(super) struct Restricted<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    copy: CopyData,
    /// Blank ownership and privilege statements too (`without_ownership`).
    no_owner: bool,
}

impl<R: BufRead> Restricted<R> {
    pub(super) fn new(inner: R, key: String) -> Self {
        Restricted {
            inner,
            buf: format!("\\restrict {key}\n").into_bytes(),
            pos: 0,
            copy: CopyData::default(),
            no_owner: false,
        }
    }

    /// Also blank the dump's `ALTER ... OWNER TO`, `GRANT`, `REVOKE` and `ALTER DEFAULT
    /// PRIVILEGES` statements (pg_dump writes each on one line), the plain-dump equivalent of
    /// pg_restore's --no-owner --no-privileges: on a server that is not ours, the roles they
    /// name are not created.
    pub(super) fn without_ownership(mut self, yes: bool) -> Self {
        self.no_owner = yes;
        self
    }
}

/// A one-line ownership or privilege statement, as pg_dump writes them.
fn is_ownership(line: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(line) else {
        return false;
    };
    let text = text.trim_end();
    text.ends_with(';')
        && ((text.starts_with("ALTER ") && text.contains(" OWNER TO "))
            || text.starts_with("GRANT ")
            || text.starts_with("REVOKE ")
            || text.starts_with("ALTER DEFAULT PRIVILEGES "))
}

impl<R: BufRead> Read for Restricted<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            if self.inner.read_until(b'\n', &mut self.buf)? == 0 {
                return Ok(0);
            }
            let line = &self.buf;
            if self.copy.is_sql(line)
                && (line.starts_with(b"\\restrict")
                    || line.starts_with(b"\\unrestrict")
                    || (self.no_owner && is_ownership(line)))
            {
                self.buf.clear();
                self.buf.push(b'\n');
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Roles a plain dump assigns ownership or privileges to (`OWNER TO r`, `GRANT ... TO r`,
/// `REVOKE ... FROM r`), outside COPY data. Archives are restored with --no-owner
/// --no-privileges and need none.
pub(super) fn referenced_roles(
    reader: impl BufRead,
) -> std::io::Result<std::collections::BTreeSet<String>> {
    let mut roles = std::collections::BTreeSet::new();
    let mut copy = CopyData::default();
    for line in reader.split(b'\n') {
        let line = line?;
        if !copy.is_sql(&line) {
            continue;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            continue;
        };
        let text = text.trim_end().trim_end_matches(';');
        let list = if text.starts_with("ALTER ") {
            text.rsplit_once(" OWNER TO ").map(|(_, r)| r)
        } else if text.starts_with("GRANT ") {
            text.rsplit_once(" TO ").map(|(_, r)| r)
        } else if text.starts_with("REVOKE ") {
            text.rsplit_once(" FROM ").map(|(_, r)| r)
        } else {
            None
        };
        let Some(list) = list else { continue };
        let list = list.split(" WITH ").next().unwrap_or(list);
        let list = list.split(" GRANTED BY ").next().unwrap_or(list);
        for role in list.split(',') {
            let role = role.trim();
            let role = match role.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
                Some(quoted) => quoted.replace("\"\"", "\""),
                None => role.to_lowercase(),
            };
            let reserved = ["public", "current_user", "session_user", "current_role"];
            if !role.is_empty() && !role.starts_with("pg_") && !reserved.contains(&role.as_str()) {
                roles.insert(role);
            }
        }
    }
    Ok(roles)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// The guard against hostile plain dumps: psql sees our `\restrict` first, and no line of
    /// the dump can lift it; COPY data passes byte for byte, whatever it holds.
    #[test]
    fn restricted_reader_blanks_the_dumps_own_restrict_lines_outside_copy_data() {
        let dump = "\\restrict theirs\nSELECT 1;\n\\unrestrict theirs\n\\! id\nCOPY public.t (a) FROM stdin;\n\\unrestrict x\n\\.\n\\unrestrict y\n";
        let mut out = String::new();
        Restricted::new(std::io::Cursor::new(dump), "KEY".into())
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(
            out,
            // The meta-command `\! id` stays for psql to refuse (it is restricted); COPY data,
            // even one that looks like `\unrestrict`, is data.
            "\\restrict KEY\n\nSELECT 1;\n\n\\! id\nCOPY public.t (a) FROM stdin;\n\\unrestrict x\n\\.\n\n"
        );
    }

    #[test]
    fn without_ownership_blanks_owner_and_privilege_statements_but_never_data() {
        let dump = "CREATE TABLE public.t (a int);\nALTER TABLE public.t OWNER TO app;\nGRANT SELECT ON TABLE public.t TO reporting;\nREVOKE ALL ON SCHEMA public FROM PUBLIC;\nALTER DEFAULT PRIVILEGES FOR ROLE app GRANT SELECT ON TABLES TO reporting;\nCOPY public.t (a) FROM stdin;\nGRANT ALL ON x TO y;\n\\.\nALTER TABLE public.t ADD COLUMN b int;\n";
        let mut out = String::new();
        Restricted::new(std::io::Cursor::new(dump), "K".into())
            .without_ownership(true)
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(
            out,
            "\\restrict K\nCREATE TABLE public.t (a int);\n\n\n\n\nCOPY public.t (a) FROM stdin;\nGRANT ALL ON x TO y;\n\\.\nALTER TABLE public.t ADD COLUMN b int;\n"
        );
    }

    #[test]
    fn roles_a_plain_dump_names_outside_copy_data() {
        let dump = "ALTER TABLE public.t OWNER TO app;\nGRANT SELECT ON TABLE public.t TO \"Read Only\", reporting;\nCOPY public.t (a) FROM stdin;\nALTER TABLE x OWNER TO not_a_role;\n\\.\nREVOKE ALL ON TABLE public.t FROM PUBLIC;\n";
        let roles = referenced_roles(std::io::Cursor::new(dump)).unwrap();
        let roles: Vec<&str> = roles.iter().map(String::as_str).collect();
        assert!(
            roles.contains(&"app") && roles.contains(&"reporting"),
            "{roles:?}"
        );
        assert!(!roles.iter().any(|r| r.contains("not_a_role")), "{roles:?}");
    }
}
