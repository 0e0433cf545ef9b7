//! The walk over a registry config's TOML document: every key is looked at by
//! hand (with its span, for the line) so that all problems of one file are
//! collected in one run instead of stopping at serde's first error.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use toml::de::{DeString, DeTable, DeValue};
use toml::Spanned;

use super::config::{
    ApiToken, ConfigError, ConfigErrors, RegistryConfig, Role, ServeConfig, SinceMode, SiteAuth, SiteCohort,
    SiteConfig, SiteMode, StoreLocation, DEFAULT_CONCURRENCY, DEFAULT_EVERY, DEFAULT_LISTEN, MAX_CONCURRENCY,
};
use super::values;

/// The top level's keys.
const TOP_KEYS: &[&str] = &["store", "registry", "serve", "site"];
/// `[registry]`'s keys.
const REGISTRY_KEYS: &[&str] = &["link_identifiers", "concept_maps"];
/// `[serve]`'s keys.
const SERVE_KEYS: &[&str] = &["listen", "token"];
/// `[[serve.token]]`'s keys.
const TOKEN_KEYS: &[&str] = &["name", "role", "sha256"];
/// `[[site]]`'s keys.
const SITE_KEYS: &[&str] = &[
    "id",
    "name",
    "base_url",
    "auth",
    "client_id",
    "key",
    "kid",
    "scope",
    "token_env",
    "mode",
    "group",
    "patients",
    "concurrency",
    "since_mode",
    "every",
];
/// The auth-specific keys of a site and the auth each belongs to.
const AUTH_KEYS: &[(&str, &str)] = &[
    ("client_id", "smart"),
    ("key", "smart"),
    ("kid", "smart"),
    ("scope", "smart"),
    ("token_env", "bearer"),
];
/// Key names that hold secrets (compared lowercase, `-` as `_`): refused anywhere.
const SECRET_KEYS: &[&str] = &[
    "token",
    "access_token",
    "bearer_token",
    "bearer",
    "password",
    "passwd",
    "client_secret",
    "secret",
    "api_key",
    "apikey",
    "private_key",
];

type Entry<'t, 'i> = (&'t Spanned<DeString<'i>>, &'t Spanned<DeValue<'i>>);

/// A key's value was present but unusable (the problem is already recorded).
struct Reported;

/// Checks `text` and builds the config, or returns every problem found.
pub(crate) fn load(text: &str, file: &str, base_dir: &Path) -> Result<RegistryConfig, ConfigErrors> {
    let mut walk = Walk {
        file,
        text,
        base_dir,
        errors: Vec::new(),
        place: String::new(),
    };
    let (root, syntax) = DeTable::parse_recoverable(text);
    for e in syntax {
        let line = e.span().map(|s| walk.line(s.start));
        let message = e.message().trim().replace('\n', "; ");
        walk.errors.push(ConfigError {
            file: file.to_string(),
            line,
            message: format!("TOML syntax: {message}"),
        });
    }
    // A document with syntax errors is only partly recovered: its missing keys
    // would be reported falsely, so only the syntax is reported.
    let config = if walk.errors.is_empty() {
        walk.registry(root.get_ref())
    } else {
        None
    };
    match config {
        Some(config) if walk.errors.is_empty() => Ok(config),
        _ => {
            walk.errors.sort_by_key(|e| e.line);
            Err(ConfigErrors(walk.errors))
        }
    }
}

struct Walk<'a> {
    file: &'a str,
    text: &'a str,
    base_dir: &'a Path,
    errors: Vec<ConfigError>,
    /// What the keys being read belong to (`site "a"`, `[serve]`), prefixed to messages.
    place: String,
}

impl Walk<'_> {
    /// Runs `f` with messages prefixed by `place`.
    fn within<T>(&mut self, place: &str, f: impl FnOnce(&mut Self) -> T) -> T {
        let outer = std::mem::replace(&mut self.place, place.to_string());
        let result = f(self);
        self.place = outer;
        result
    }

    /// The 1-based line of a byte offset.
    fn line(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    fn error(&mut self, line: usize, message: impl Into<String>) {
        let message = message.into();
        let message = if self.place.is_empty() {
            message
        } else {
            format!("{}: {message}", self.place)
        };
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line: Some(line),
            message,
        });
    }

    fn key_line(&self, key: &Spanned<DeString<'_>>) -> usize {
        self.line(key.span().start)
    }

    /// The whole document.
    fn registry(&mut self, root: &DeTable<'_>) -> Option<RegistryConfig> {
        self.check_keys(root, TOP_KEYS);
        let store = self.store(root);
        let (link_identifiers, concept_maps) = match self.table(root, "registry") {
            Some(t) => self.within("[registry]", |w| (w.link_identifiers(t), w.concept_maps(t))),
            None => (Vec::new(), Vec::new()),
        };
        let serve = self.serve(root);
        let sites = self.sites(root);
        Some(RegistryConfig {
            store: store?,
            link_identifiers,
            concept_maps,
            serve: serve?,
            sites: sites?,
        })
    }

    fn store(&mut self, root: &DeTable<'_>) -> Option<StoreLocation> {
        let (text, line) = match self.string(root, "store") {
            Ok(Some(got)) => got,
            Ok(None) => {
                self.error(1, "missing `store`: the registry's store, a path relative to this file");
                return None;
            }
            Err(Reported) => return None,
        };
        if text.trim().is_empty() {
            self.error(line, "`store` is empty");
            return None;
        }
        match StoreLocation::parse(text) {
            StoreLocation::Url(url) if values::has_password(&url) => {
                self.error(
                    line,
                    "`store` holds a password: secrets are never in the config file (give it through the \
                     environment or a password file)",
                );
                None
            }
            StoreLocation::Path(relative) => Some(StoreLocation::Path(self.base_dir.join(relative))),
            url => Some(url),
        }
    }

    fn link_identifiers(&mut self, registry: &DeTable<'_>) -> Vec<String> {
        self.check_keys(registry, REGISTRY_KEYS);
        let Some((key, value)) = find(registry, "link_identifiers") else {
            return Vec::new();
        };
        let line = self.key_line(key);
        let DeValue::Array(items) = value.get_ref() else {
            self.error(line, wrong_type("link_identifiers", "an array of strings", value));
            return Vec::new();
        };
        let mut systems = Vec::new();
        let mut seen = HashSet::new();
        for item in items.iter() {
            let item_line = self.line(item.span().start);
            match item.get_ref() {
                DeValue::String(s) if values::url_scheme(s).is_some() || s.starts_with("urn:") => {
                    if seen.insert(s.to_string()) {
                        systems.push(s.to_string());
                    } else {
                        self.error(item_line, "`link_identifiers` names the same system twice");
                    }
                }
                DeValue::String(_) => self.error(
                    item_line,
                    "`link_identifiers`: each is an identifier system URI (e.g. \"https://nhs.example/nhs-number\" \
                     or \"urn:oid:…\")",
                ),
                other => self.error(
                    item_line,
                    format!(
                        "`link_identifiers`: each must be a string, not {}",
                        article(other.type_str())
                    ),
                ),
            }
        }
        systems
    }

    /// `concept_maps`: ConceptMap JSON files, each once, relative to the config's folder.
    fn concept_maps(&mut self, registry: &DeTable<'_>) -> Vec<PathBuf> {
        let Some((key, value)) = find(registry, "concept_maps") else {
            return Vec::new();
        };
        let line = self.key_line(key);
        let DeValue::Array(items) = value.get_ref() else {
            self.error(line, wrong_type("concept_maps", "an array of strings", value));
            return Vec::new();
        };
        let mut maps = Vec::new();
        for item in items.iter() {
            let item_line = self.line(item.span().start);
            match item.get_ref() {
                DeValue::String(s) if s.ends_with(".json") => {
                    let path = self.base_dir.join(s.as_ref());
                    if maps.contains(&path) {
                        self.error(item_line, "`concept_maps` names the same file twice");
                    } else {
                        maps.push(path);
                    }
                }
                DeValue::String(_) => self.error(
                    item_line,
                    "`concept_maps`: each is a FHIR R4 ConceptMap in JSON, a `*.json` path relative to this file",
                ),
                other => self.error(
                    item_line,
                    format!(
                        "`concept_maps`: each must be a string, not {}",
                        article(other.type_str())
                    ),
                ),
            }
        }
        maps
    }

    fn serve(&mut self, root: &DeTable<'_>) -> Option<ServeConfig> {
        let default = DEFAULT_LISTEN.parse::<SocketAddr>().ok()?;
        let Some(serve) = self.table(root, "serve") else {
            return Some(ServeConfig {
                listen: default,
                tokens: Vec::new(),
            });
        };
        self.within("[serve]", |w| {
            let listen = w.listen(serve, default);
            let tokens = w.tokens(serve);
            Some(ServeConfig {
                listen: listen?,
                tokens: tokens?,
            })
        })
    }

    /// `[[serve.token]]`: each with a name (unique), a role and a SHA-256 hash.
    fn tokens(&mut self, serve: &DeTable<'_>) -> Option<Vec<ApiToken>> {
        let Some((key, value)) = find(serve, "token") else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = value.get_ref() else {
            let line = self.key_line(key);
            self.error(line, wrong_type("token", "an array of tables ([[serve.token]])", value));
            return None;
        };
        let mut tokens: Vec<ApiToken> = Vec::new();
        let mut complete = true;
        for item in items.iter() {
            match self.token(item) {
                Some(t) if tokens.iter().any(|held| held.name == t.name) => {
                    let line = self.line(item.span().start);
                    self.error(line, format!("token `{}` is named twice", t.name));
                    complete = false;
                }
                Some(t) => tokens.push(t),
                None => complete = false,
            }
        }
        complete.then_some(tokens)
    }

    /// One `[[serve.token]]`. Its hash is never repeated in a message.
    fn token(&mut self, item: &Spanned<DeValue<'_>>) -> Option<ApiToken> {
        let header = self.line(item.span().start);
        let DeValue::Table(t) = item.get_ref() else {
            self.error(header, "`token` must be a table ([[serve.token]])");
            return None;
        };
        self.check_keys(t, TOKEN_KEYS);
        let name = self
            .required_string(t, "name", header, "the token holder's name")
            .and_then(|(s, line)| match values::check_site_id(s) {
                Ok(()) => Some(s.to_string()),
                Err(_) => {
                    self.error(line, "token `name` must be 1 to 32 of a-z, 0-9 and -");
                    None
                }
            });
        let role = self.choice(t, "role", &[("reader", Role::Reader), ("operator", Role::Operator)]);
        let role = match role {
            Some(Some((role, _))) => Some(role),
            Some(None) => {
                self.error(header, "missing `role`: reader or operator");
                None
            }
            None => None,
        };
        let sha256 = self
            .required_string(t, "sha256", header, "the token's SHA-256 (imnm serve hash-token)")
            .and_then(|(s, line)| {
                let hex = s.trim().to_ascii_lowercase();
                if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    Some(hex)
                } else {
                    self.error(
                        line,
                        "`sha256` must be 64 hex digits (the token's SHA-256, never the token)",
                    );
                    None
                }
            });
        Some(ApiToken {
            name: name?,
            role: role?,
            sha256: sha256?,
        })
    }

    fn listen(&mut self, serve: &DeTable<'_>, default: SocketAddr) -> Option<SocketAddr> {
        self.check_keys(serve, SERVE_KEYS);
        let listen = match self.string(serve, "listen") {
            Ok(None) => default,
            Ok(Some((text, line))) => match text.trim().parse::<SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => {
                    self.error(
                        line,
                        "`listen` must be an IP address and a port, e.g. \"127.0.0.1:8080\"",
                    );
                    return None;
                }
            },
            Err(Reported) => return None,
        };
        Some(listen)
    }

    fn sites(&mut self, root: &DeTable<'_>) -> Option<Vec<SiteConfig>> {
        let Some((key, value)) = find(root, "site") else {
            self.error(1, "no [[site]]: a registry config needs at least one site");
            return None;
        };
        let line = self.key_line(key);
        let items = match value.get_ref() {
            DeValue::Array(items) => items,
            DeValue::Table(_) => {
                self.error(
                    line,
                    "`site` must be an array of tables: write [[site]] (two brackets) for each site",
                );
                return None;
            }
            _ => {
                self.error(line, wrong_type("site", "an array of tables ([[site]])", value));
                return None;
            }
        };
        if items.is_empty() {
            self.error(line, "no [[site]]: a registry config needs at least one site");
            return None;
        }
        let mut ids: HashMap<String, usize> = HashMap::new();
        let mut sites = Vec::new();
        let mut complete = true;
        for (i, item) in items.iter().enumerate() {
            match self.within(&format!("site #{}", i + 1), |w| w.site(item, &mut ids)) {
                Some(site) => sites.push(site),
                None => complete = false,
            }
        }
        complete.then_some(sites)
    }

    /// One `[[site]]` (messages name it by its id once that is known).
    fn site(&mut self, item: &Spanned<DeValue<'_>>, ids: &mut HashMap<String, usize>) -> Option<SiteConfig> {
        let header = self.line(item.span().start);
        let DeValue::Table(t) = item.get_ref() else {
            self.error(header, "must be a table ([[site]])");
            return None;
        };
        let id = self.site_id(t, header, ids);
        if let Some(id) = &id {
            self.place = format!("site \"{id}\"");
        }
        self.check_keys(t, SITE_KEYS);
        let name = self
            .required_string(t, "name", header, "its name")
            .and_then(|(s, line)| {
                if s.trim().is_empty() {
                    self.error(line, "`name` is empty");
                    None
                } else {
                    Some(s.to_string())
                }
            });
        let base_url = self
            .required_string(t, "base_url", header, "its FHIR R4 base URL")
            .and_then(|(s, line)| match values::check_base_url(s) {
                Ok(()) => Some(s.to_string()),
                Err(message) => {
                    self.error(line, message);
                    None
                }
            });
        let auth = self.auth(t, header);
        let mode = self.choice(t, "mode", &[("crawl", SiteMode::Crawl), ("bulk", SiteMode::Bulk)]);
        let since_mode = self.choice(
            t,
            "since_mode",
            &[
                ("last-updated", SinceMode::LastUpdated),
                ("created", SinceMode::Created),
            ],
        );
        let cohort = self.cohort(t);
        if let (Some(Some((SiteMode::Bulk, _))), Some(Some((SinceMode::Created, line)))) = (&mode, &since_mode) {
            self.error(
                *line,
                "since_mode = \"created\" works with mode = \"crawl\" only (a Bulk export asks with _since)",
            );
        }
        if let (Some(Some((SiteMode::Bulk, _))), Some((SiteCohort::Patients(_), Some(line)))) = (&mode, &cohort) {
            self.error(
                *line,
                "`patients` works with mode = \"crawl\" only (a Bulk export is of a `group` or of all patients)",
            );
        }
        let concurrency = self.concurrency(t);
        let every = match self.string(t, "every") {
            Ok(None) => Some(DEFAULT_EVERY),
            Ok(Some((text, line))) => match values::parse_duration(text) {
                Ok(d) => Some(d),
                Err(message) => {
                    self.error(line, format!("`every`: {message}"));
                    None
                }
            },
            Err(Reported) => None,
        };
        Some(SiteConfig {
            id: id?,
            name: name?,
            base_url: base_url?,
            auth: auth?,
            mode: mode?.map_or(SiteMode::default(), |(m, _)| m),
            cohort: cohort?.0,
            concurrency: concurrency?,
            since_mode: since_mode?.map_or(SinceMode::default(), |(m, _)| m),
            every: every?,
            line: header,
        })
    }

    /// A site's id, checked and unique.
    fn site_id(&mut self, t: &DeTable<'_>, header: usize, ids: &mut HashMap<String, usize>) -> Option<String> {
        let (id, line) = match self.string(t, "id") {
            Ok(Some(got)) => got,
            Ok(None) => {
                self.error(header, "missing `id`: a short stable name such as \"hospital-a\"");
                return None;
            }
            Err(Reported) => return None,
        };
        if let Err(message) = values::check_site_id(id) {
            self.error(line, message);
            return None;
        }
        if let Some(first) = ids.get(id) {
            let message = format!("site id \"{id}\" is used twice (first on line {first})");
            self.error(line, message);
            return None;
        }
        ids.insert(id.to_string(), line);
        Some(id.to_string())
    }

    /// A site's auth and the keys that belong to it.
    fn auth(&mut self, t: &DeTable<'_>, header: usize) -> Option<SiteAuth> {
        let (kind, written) = match self.string(t, "auth") {
            Ok(None) => ("none", false),
            Ok(Some(("none", _))) => ("none", true),
            Ok(Some(("bearer", _))) => ("bearer", true),
            Ok(Some(("smart", _))) => ("smart", true),
            Ok(Some((_, line))) => {
                self.error(line, "`auth` must be \"none\", \"bearer\" or \"smart\"");
                return None;
            }
            Err(Reported) => return None,
        };
        let mut misplaced = false;
        for (key, _) in t.iter() {
            let Some((_, owner)) = AUTH_KEYS.iter().find(|(k, _)| *k == key.get_ref().as_ref()) else {
                continue;
            };
            if *owner != kind {
                let default = if written { "" } else { " (the default)" };
                let line = self.key_line(key);
                self.error(
                    line,
                    format!(
                        "`{}` belongs to auth = \"{owner}\", but this site has auth = \"{kind}\"{default}",
                        key.get_ref()
                    ),
                );
                misplaced = true;
            }
        }
        let auth = match kind {
            "bearer" => {
                let (name, line) = self.required_string(
                    t,
                    "token_env",
                    header,
                    "the NAME of the environment variable that holds the token",
                )?;
                if !values::is_env_name(name) {
                    self.error(
                        line,
                        "`token_env` must be the name of an environment variable (letters, digits and _), \
                             not the token: the token is never in the file",
                    );
                    return None;
                }
                SiteAuth::Bearer {
                    token_env: name.to_string(),
                }
            }
            "smart" => {
                let client_id = self.required_string(t, "client_id", header, "the registered client id");
                let key = self.required_string(t, "key", header, "the private key file (PEM or JWKS)");
                let kid = self.optional_nonempty(t, "kid");
                let scope = self.optional_nonempty(t, "scope");
                let client_id = self.nonempty(client_id, "client_id");
                let key = self.nonempty(key, "key");
                SiteAuth::Smart {
                    client_id: client_id?.to_string(),
                    key: self.base_dir.join(key?),
                    kid: kid?,
                    scope: scope?,
                }
            }
            _ => SiteAuth::None,
        };
        (!misplaced).then_some(auth)
    }

    /// A site's cohort, with the line of `patients` when given.
    fn cohort(&mut self, t: &DeTable<'_>) -> Option<(SiteCohort, Option<usize>)> {
        let group = self.optional_nonempty(t, "group");
        let patients = match self.string(t, "patients") {
            Ok(Some((text, line))) if !text.trim().is_empty() => Some(Some((text, line))),
            Ok(Some((_, line))) => {
                self.error(line, "`patients` is empty");
                None
            }
            Ok(None) => Some(None),
            Err(Reported) => None,
        };
        match (group?, patients?) {
            (Some(_), Some(_)) => {
                let line = ["group", "patients"]
                    .iter()
                    .filter_map(|k| find(t, k))
                    .map(|(k, _)| self.key_line(k))
                    .max()
                    .unwrap_or(1);
                self.error(
                    line,
                    "`group` and `patients` exclude each other: the cohort is a Group's members or a file \
                         of Patient ids",
                );
                None
            }
            (Some(group), None) => Some((SiteCohort::Group(group), None)),
            (None, Some((text, line))) => Some((SiteCohort::Patients(self.base_dir.join(text)), Some(line))),
            (None, None) => Some((SiteCohort::Search, None)),
        }
    }

    fn concurrency(&mut self, t: &DeTable<'_>) -> Option<usize> {
        let Some((key, value)) = find(t, "concurrency") else {
            return Some(DEFAULT_CONCURRENCY);
        };
        let line = self.key_line(key);
        let DeValue::Integer(n) = value.get_ref() else {
            self.error(line, wrong_type("concurrency", "an integer", value));
            return None;
        };
        match usize::from_str_radix(n.as_str(), n.radix()) {
            Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Some(n),
            _ => {
                self.error(line, format!("`concurrency` must be from 1 to {MAX_CONCURRENCY}"));
                None
            }
        }
    }

    /// One of `choices` (absent: `Some(None)`), with its line.
    fn choice<T: Copy>(&mut self, t: &DeTable<'_>, key: &str, choices: &[(&str, T)]) -> Option<Option<(T, usize)>> {
        match self.string(t, key) {
            Ok(None) => Some(None),
            Ok(Some((text, line))) => match choices.iter().find(|(name, _)| *name == text) {
                Some((_, value)) => Some(Some((*value, line))),
                None => {
                    let names: Vec<String> = choices.iter().map(|(name, _)| format!("\"{name}\"")).collect();
                    self.error(line, format!("`{key}` must be {}", names.join(" or ")));
                    None
                }
            },
            Err(Reported) => None,
        }
    }

    /// Keys that are not in `allowed`: secrets, near misses (`base-url`), unknown.
    fn check_keys(&mut self, t: &DeTable<'_>, allowed: &[&str]) {
        for (key, _) in t.iter() {
            let name = key.get_ref().as_ref();
            if allowed.contains(&name) {
                continue;
            }
            let line = self.key_line(key);
            let normal = name.to_ascii_lowercase().replace('-', "_");
            let message = if SECRET_KEYS.contains(&normal.as_str()) {
                format!(
                    "`{name}` would put a secret in the file, and secrets are never in the config: name an \
                     environment variable with token_env (auth = \"bearer\") or a key file with key (auth = \"smart\")"
                )
            } else if let Some(known) = allowed.iter().find(|k| **k == normal) {
                format!("unknown key `{name}`: did you mean `{known}`?")
            } else {
                format!("unknown key `{name}` (known: {})", allowed.join(", "))
            };
            self.error(line, message);
        }
    }

    /// A sub-table such as `[serve]`; a key of another type is reported.
    fn table<'t, 'i>(&mut self, t: &'t DeTable<'i>, key: &str) -> Option<&'t DeTable<'i>> {
        let (k, value) = find(t, key)?;
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            _ => {
                let line = self.key_line(k);
                self.error(line, wrong_type(key, &format!("a table ([{key}])"), value));
                None
            }
        }
    }

    /// A string key with its line: `Ok(None)` when absent, `Err` (reported) when not a string.
    fn string<'t>(&mut self, t: &'t DeTable<'_>, key: &str) -> Result<Option<(&'t str, usize)>, Reported> {
        let Some((k, value)) = find(t, key) else {
            return Ok(None);
        };
        let line = self.key_line(k);
        match value.get_ref() {
            DeValue::String(s) => Ok(Some((s.as_ref(), line))),
            _ => {
                self.error(line, wrong_type(key, "a string", value));
                Err(Reported)
            }
        }
    }

    /// A string key that must be there; its absence is reported on the site's header line.
    fn required_string<'t>(
        &mut self,
        t: &'t DeTable<'_>,
        key: &str,
        header: usize,
        what: &str,
    ) -> Option<(&'t str, usize)> {
        match self.string(t, key) {
            Ok(Some(got)) => Some(got),
            Ok(None) => {
                self.error(header, format!("missing `{key}`: {what}"));
                None
            }
            Err(Reported) => None,
        }
    }

    /// An optional string that must not be empty when given (`Some(None)` when absent).
    fn optional_nonempty(&mut self, t: &DeTable<'_>, key: &str) -> Option<Option<String>> {
        match self.string(t, key) {
            Ok(None) => Some(None),
            Ok(Some(got)) => self.nonempty(Some(got), key).map(|s| Some(s.to_string())),
            Err(Reported) => None,
        }
    }

    fn nonempty<'t>(&mut self, got: Option<(&'t str, usize)>, key: &str) -> Option<&'t str> {
        let (text, line) = got?;
        if text.trim().is_empty() {
            self.error(line, format!("`{key}` is empty"));
            return None;
        }
        Some(text)
    }
}

/// The entry of `key` in `t`.
fn find<'t, 'i>(t: &'t DeTable<'i>, key: &str) -> Option<Entry<'t, 'i>> {
    t.iter().find(|(k, _)| k.get_ref().as_ref() == key)
}

/// "`key` must be EXPECTED, not a TYPE" (never the value itself).
fn wrong_type(key: &str, expected: &str, value: &Spanned<DeValue<'_>>) -> String {
    format!(
        "`{key}` must be {expected}, not {}",
        article(value.get_ref().type_str())
    )
}

/// "a string", "an integer".
fn article(type_name: &str) -> String {
    match type_name.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => format!("an {type_name}"),
        _ => format!("a {type_name}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;

    fn load_text(text: &str) -> Result<RegistryConfig, ConfigErrors> {
        load(text, "r.toml", Path::new("/etc/registry"))
    }

    fn problems(text: &str) -> Vec<String> {
        match load_text(text) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(ToString::to_string).collect(),
        }
    }

    const MINIMAL: &str =
        "store = \"registry.db\"\n[[site]]\nid = \"a\"\nname = \"A\"\nbase_url = \"https://a.example/R4\"\n";

    #[test]
    fn serve_tokens_are_hashes_with_a_role() {
        let hash = "ab".repeat(32);
        let text = format!(
            "{MINIMAL}[serve]\nlisten = \"0.0.0.0:8080\"\n[[serve.token]]\nname = \"ops\"\nrole = \"operator\"\nsha256 = \"{}\"\n",
            hash.to_uppercase()
        );
        let config = load_text(&text).unwrap();
        assert_eq!(
            config.serve.tokens,
            [ApiToken {
                name: "ops".into(),
                role: Role::Operator,
                sha256: hash
            }]
        );
        let bad =
            format!("{MINIMAL}[[serve.token]]\nname = \"Ops Team\"\nrole = \"admin\"\nsha256 = \"s3cr3t-token\"\n");
        let found = problems(&bad);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found.iter().all(|p| !p.contains("s3cr3t")), "{found:?}");
    }

    #[test]
    fn a_minimal_config_takes_the_defaults() {
        let config = load_text(MINIMAL).unwrap();
        assert_eq!(
            config.store,
            StoreLocation::Path(PathBuf::from("/etc/registry/registry.db"))
        );
        assert_eq!(config.serve.listen.to_string(), DEFAULT_LISTEN);
        assert!(config.link_identifiers.is_empty());
        let site = &config.sites[0];
        assert_eq!(
            (
                site.auth.kind(),
                site.mode,
                &site.cohort,
                site.concurrency,
                site.since_mode,
                site.every,
                site.line
            ),
            (
                "none",
                SiteMode::Crawl,
                &SiteCohort::Search,
                4,
                SinceMode::LastUpdated,
                Duration::from_secs(86_400),
                2
            )
        );
    }

    #[test]
    fn a_store_url_is_kept_as_written() {
        let text = MINIMAL.replace("registry.db", "postgres://registry@db.example/imnm");
        let config = load_text(&text).unwrap();
        assert_eq!(
            config.store,
            StoreLocation::Url("postgres://registry@db.example/imnm".into())
        );
    }

    #[test]
    fn misplaced_auth_keys_name_their_auth() {
        let text = format!("{MINIMAL}auth = \"bearer\"\ntoken_env = \"T\"\nclient_id = \"c\"\n");
        assert_eq!(
            problems(&text),
            ["r.toml:8: site \"a\": `client_id` belongs to auth = \"smart\", but this site has auth = \"bearer\""]
        );
        let text = format!("{MINIMAL}kid = \"k\"\n");
        assert_eq!(
            problems(&text),
            ["r.toml:6: site \"a\": `kid` belongs to auth = \"smart\", but this site has auth = \"none\" (the default)"]
        );
    }

    #[test]
    fn missing_keys_are_reported_on_the_site_header() {
        let text = "store = \"r.db\"\n\n[[site]]\nid = \"a\"\nauth = \"smart\"\n";
        assert_eq!(
            problems(text),
            [
                "r.toml:3: site \"a\": missing `name`: its name",
                "r.toml:3: site \"a\": missing `base_url`: its FHIR R4 base URL",
                "r.toml:3: site \"a\": missing `client_id`: the registered client id",
                "r.toml:3: site \"a\": missing `key`: the private key file (PEM or JWKS)",
            ]
        );
    }

    #[test]
    fn secrets_are_refused_anywhere_and_never_repeated() {
        let text = format!("client-secret = \"s3cr3t\"\n{MINIMAL}token = \"s3cr3t\"\n[serve]\npassword = \"s3cr3t\"\n");
        let found = problems(&text);
        assert_eq!(found.len(), 3, "{found:?}");
        assert!(found
            .iter()
            .all(|p| p.contains("secrets are never in the config") && !p.contains("s3cr3t")));
    }

    #[test]
    fn a_single_site_table_is_not_an_array() {
        let text = "store = \"r.db\"\n[site]\nid = \"a\"\n";
        assert_eq!(
            problems(text),
            ["r.toml:2: `site` must be an array of tables: write [[site]] (two brackets) for each site"]
        );
    }

    #[test]
    fn syntax_errors_have_their_line() {
        let found = problems("store = \"r.db\"\n\n[[site]\nid = \"a\"\n");
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("r.toml:3: TOML syntax: "), "{found:?}");
    }

    #[test]
    fn bulk_refuses_patients_and_created() {
        let text = format!("{MINIMAL}mode = \"bulk\"\npatients = \"p.txt\"\nsince_mode = \"created\"\n");
        let found = problems(&text);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("r.toml:7: site \"a\": `patients` works with mode = \"crawl\" only"));
        assert!(found[1].starts_with("r.toml:8: site \"a\": since_mode = \"created\""));
    }
}
