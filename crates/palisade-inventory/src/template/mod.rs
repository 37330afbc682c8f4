//! Path templating: folding observed request paths into OpenAPI route
//! templates (`/users/123/orders/9f1c…` → `/users/{userId}/orders/{orderId}`)
//! for services that have no spec. The rules are in the
//! [crate documentation](crate#path-templating).

mod naming;
mod segment;
mod trie;

use std::collections::BTreeMap;
use std::fmt;

pub use segment::{SegmentKind, RESERVED_WORDS};

use crate::error::{ObserveError, OptionsError};
use segment::Class;
use trie::{Hits, MatchNode, Node};

/// Default [`TemplaterOptions::word_threshold`].
pub const DEFAULT_WORD_THRESHOLD: usize = 64;
/// Default [`TemplaterOptions::shape_threshold`].
pub const DEFAULT_SHAPE_THRESHOLD: usize = 8;
/// Default [`TemplaterOptions::max_segments`].
pub const DEFAULT_MAX_SEGMENTS: usize = 32;
/// Default [`TemplaterOptions::max_nodes`].
pub const DEFAULT_MAX_NODES: usize = 100_000;

/// How eagerly a [`PathTemplater`] folds, and how much it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TemplaterOptions {
    /// Distinct words (segments with letters and no digits) under one parent
    /// that make that position a free-form parameter (GitHub's
    /// `/repos/{owner}/{repo}`). High, because literal route names are words
    /// too and must never be merged: the default, 64, is more sibling routes
    /// than large public APIs have under one parent. At least 2.
    pub word_threshold: usize,
    /// Distinct segments of one shape with digits (`AB-1234`, `v1.2.3`)
    /// under one parent that make that shape a parameter. Default 8. At
    /// least 2.
    pub shape_threshold: usize,
    /// Paths with more segments are refused. Default 32. At least 1.
    pub max_segments: usize,
    /// Trie nodes kept at most (roughly, distinct path shapes times their
    /// length); past it, observations that would add nodes are refused while
    /// those of known shapes are still counted. Default 100 000. At least 1.
    pub max_nodes: usize,
}

impl Default for TemplaterOptions {
    fn default() -> Self {
        TemplaterOptions {
            word_threshold: DEFAULT_WORD_THRESHOLD,
            shape_threshold: DEFAULT_SHAPE_THRESHOLD,
            max_segments: DEFAULT_MAX_SEGMENTS,
            max_nodes: DEFAULT_MAX_NODES,
        }
    }
}

impl TemplaterOptions {
    fn check(&self) -> Result<(), OptionsError> {
        if self.word_threshold < 2 {
            return Err(OptionsError::WordThreshold(self.word_threshold));
        }
        if self.shape_threshold < 2 {
            return Err(OptionsError::ShapeThreshold(self.shape_threshold));
        }
        if self.max_segments == 0 {
            return Err(OptionsError::MaxSegments);
        }
        if self.max_nodes == 0 {
            return Err(OptionsError::MaxNodes);
        }
        Ok(())
    }
}

/// Learns route templates from observed request paths.
///
/// Feed it with [`observe`](PathTemplater::observe) (cheap: no allocation
/// for a path of a known shape, beyond percent-decoding), read the current
/// templates with [`templates`](PathTemplater::templates) (a fold over
/// everything seen so far). The result depends only on the multiset of
/// observed paths, never on their order, as long as
/// [`max_nodes`](TemplaterOptions::max_nodes) was not reached.
///
/// ```
/// use palisade_inventory::PathTemplater;
///
/// let mut templater = PathTemplater::new();
/// for id in [17, 42, 99] {
///     templater.observe(Some("GET"), &format!("/users/{id}/orders/0b7e1a52-3f0c-4d0e-9c64-2f1d8a7b6c5e")).unwrap();
/// }
/// templater.observe(Some("GET"), "/users/me").unwrap();
/// let templates = templater.templates();
/// let paths: Vec<&str> = templates.iter().map(|t| t.as_str()).collect();
/// assert_eq!(paths, ["/users/me", "/users/{userId}/orders/{orderId}"]);
/// let matched = templates.match_template("/users/7/orders/6f0c1e2a-1b2c-4d3e-8f90-a1b2c3d4e5f6").unwrap();
/// assert_eq!(matched.as_str(), "/users/{userId}/orders/{orderId}");
/// assert_eq!(matched.count(), 3);
/// assert!(templates.match_template("/users/export").is_none(), "a new route, not a user id");
/// ```
#[derive(Debug)]
pub struct PathTemplater {
    options: TemplaterOptions,
    root: Node,
    nodes: usize,
    observations: u64,
}

impl Default for PathTemplater {
    fn default() -> Self {
        PathTemplater::new()
    }
}

impl PathTemplater {
    /// A templater with the default options.
    pub fn new() -> PathTemplater {
        PathTemplater {
            options: TemplaterOptions::default(),
            root: Node::default(),
            nodes: 1,
            observations: 0,
        }
    }

    /// A templater with `options`, if they are valid.
    pub fn with_options(options: TemplaterOptions) -> Result<PathTemplater, OptionsError> {
        options.check()?;
        Ok(PathTemplater {
            options,
            ..PathTemplater::new()
        })
    }

    /// The options in force.
    pub fn options(&self) -> &TemplaterOptions {
        &self.options
    }

    /// How many observations were recorded.
    pub fn observations(&self) -> u64 {
        self.observations
    }

    /// Records one request: its method, when known (counted per template),
    /// and its path. A query string or fragment is ignored; percent-escapes
    /// of unreserved characters are decoded (`/users/%61da` is `/users/ada`).
    ///
    /// Errors never contain the path (it may carry personal data).
    pub fn observe(&mut self, method: Option<&str>, path: &str) -> Result<(), ObserveError> {
        if let Some(method) = method {
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if method.is_empty() || method.len() > 32 || !method.bytes().all(token) {
                return Err(ObserveError::InvalidMethod);
            }
        }
        let segments = segment::split(path, self.options.max_segments)?;
        // A path creates at most one node per segment and one overflow node.
        let bound = segments.len() + 1;
        if self.nodes + bound > self.options.max_nodes
            && self.nodes + self.root.nodes_needed(&segments, &self.options)
                > self.options.max_nodes
        {
            return Err(ObserveError::Full {
                max: self.options.max_nodes,
            });
        }
        let mut created = 0;
        self.root
            .insert(&segments, method, &self.options, &mut created);
        self.nodes += created;
        self.observations += 1;
        Ok(())
    }

    /// Folds everything observed so far into templates.
    pub fn templates(&self) -> TemplateSet {
        let (templates, root) = trie::fold(&self.root, &self.options);
        TemplateSet { templates, root }
    }
}

/// Which values a parameter stands for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accepts {
    kinds: u8,
    shapes: Vec<String>,
    free_form: bool,
}

impl Accepts {
    /// The [`SegmentKind`]s seen at this position.
    pub fn kinds(&self) -> impl Iterator<Item = SegmentKind> + '_ {
        SegmentKind::ALL
            .into_iter()
            .filter(|kind| self.kinds & (1 << kind.index()) != 0)
    }

    /// The shapes (`A-9` for `AB-1234`) that were folded here because
    /// enough distinct values had them. Empty when free-form.
    pub fn shapes(&self) -> impl Iterator<Item = &str> {
        self.shapes.iter().map(String::as_str)
    }

    /// Whether this position holds free-form values: any segment but the
    /// literal siblings and the reserved route words.
    pub fn is_free_form(&self) -> bool {
        self.free_form
    }

    /// Whether a raw path segment is a value of this parameter (and not a
    /// new sibling route).
    pub fn accepts(&self, segment: &str) -> bool {
        self.accepts_class(&segment::class(&segment::normalize(segment)))
    }

    fn accepts_class(&self, class: &Class) -> bool {
        match class {
            Class::Typed(kind) => self.free_form || self.kinds & (1 << kind.index()) != 0,
            Class::Reserved => false,
            Class::Word => self.free_form,
            Class::Shaped(shape) => {
                self.free_form || self.shapes.iter().any(|s| s == shape.as_str())
            }
        }
    }
}

/// A path parameter of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    name: String,
    accepts: Accepts,
}

impl Param {
    pub(crate) fn new(name: String, accepts: Accepts) -> Param {
        Param { name, accepts }
    }

    /// The name, unique within its template (`userId`, `param2`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The values it stands for.
    pub fn accepts(&self) -> &Accepts {
        &self.accepts
    }
}

/// One `/`-separated segment of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateSegment {
    /// Literal text (normalised as request segments are).
    Literal(String),
    /// `{name}`.
    Param(Param),
}

/// A route template learned from traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    path: String,
    segments: Vec<TemplateSegment>,
    count: u64,
    methods: BTreeMap<String, u64>,
}

impl Template {
    fn new(segments: Vec<TemplateSegment>, hits: Hits) -> Template {
        let mut path = String::new();
        for segment in &segments {
            path.push('/');
            match segment {
                TemplateSegment::Literal(text) => path.push_str(text),
                TemplateSegment::Param(param) => {
                    path.push('{');
                    path.push_str(&param.name);
                    path.push('}');
                }
            }
        }
        if path.is_empty() {
            path.push('/');
        }
        Template {
            path,
            segments,
            count: hits.count,
            methods: hits
                .methods
                .into_iter()
                .map(|(method, n)| (method.into_string(), n))
                .collect(),
        }
    }

    /// The template in OpenAPI syntax: `/users/{userId}/orders/{orderId}`.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// The segments (`/` has one, an empty literal).
    pub fn segments(&self) -> &[TemplateSegment] {
        &self.segments
    }

    /// The parameters, in path order.
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        self.segments.iter().filter_map(|s| match s {
            TemplateSegment::Param(p) => Some(p),
            TemplateSegment::Literal(_) => None,
        })
    }

    /// How many observed requests it covers.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// How many of them had each method (requests observed without a method
    /// are in [`count`](Template::count) only), in method order.
    pub fn methods(&self) -> impl Iterator<Item = (&str, u64)> {
        self.methods.iter().map(|(m, n)| (m.as_str(), *n))
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path)
    }
}

/// The templates of a [`PathTemplater`] at one moment, and a matcher for
/// them.
///
/// Iterates in tree order: a template before the ones that extend it;
/// among siblings, literals in byte order, then the parameter.
#[derive(Debug)]
pub struct TemplateSet {
    templates: Vec<Template>,
    root: MatchNode,
}

impl TemplateSet {
    /// The templates.
    pub fn iter(&self) -> std::slice::Iter<'_, Template> {
        self.templates.iter()
    }

    /// How many templates there are.
    pub fn len(&self) -> usize {
        self.templates.len()
    }

    /// Whether there is none (nothing was observed).
    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// The template a request path falls under, if any.
    ///
    /// A segment matches a literal sibling first, else the parameter when
    /// the parameter [accepts](Accepts::accepts) it. `Some` means observing
    /// the path would only add to that template's count; `None` means it has
    /// a new shape: a new route, or a new kind of value (a UUID where only
    /// integers were seen).
    pub fn match_template(&self, path: &str) -> Option<&Template> {
        let path = path.split(['?', '#']).next()?;
        let rest = path.strip_prefix('/')?;
        if path.len() > segment::MAX_PATH_BYTES {
            return None;
        }
        let mut node = &self.root;
        for raw in rest.split('/') {
            if raw.contains(['{', '}']) {
                return None;
            }
            let segment = segment::normalize(raw);
            node = match node.literals.get(segment.as_ref()) {
                Some(child) => child,
                None => {
                    let (accepts, child) = node.param.as_ref()?;
                    if !accepts.accepts_class(&segment::class(&segment)) {
                        return None;
                    }
                    child
                }
            };
        }
        node.template.and_then(|i| self.templates.get(i))
    }
}

impl<'a> IntoIterator for &'a TemplateSet {
    type Item = &'a Template;
    type IntoIter = std::slice::Iter<'a, Template>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests;
