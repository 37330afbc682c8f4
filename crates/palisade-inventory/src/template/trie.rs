//! The observation trie and the fold that turns it into templates.
//!
//! The trie keeps what the fold needs and no more: typed segments (ids,
//! UUIDs, …) are stored by kind, not by value, and once a position has
//! enough distinct words (or values of one shape) to be a parameter whatever
//! else arrives, further values go to one overflow child instead of one child
//! each. So the trie grows with the number of *shapes* of traffic, not with
//! the number of requests, and folding it gives exactly what folding every
//! concrete path would.

use std::borrow::Cow;
use std::collections::BTreeMap;

use super::naming::param_name;
use super::segment::{class, Class};
use super::{Accepts, Param, Template, TemplateSegment, TemplaterOptions};

/// Observations that ended at a node.
#[derive(Debug, Clone, Default)]
pub(crate) struct Hits {
    pub(crate) count: u64,
    pub(crate) methods: BTreeMap<Box<str>, u64>,
}

impl Hits {
    fn add(&mut self, method: Option<&str>) {
        self.count += 1;
        if let Some(method) = method {
            match self.methods.get_mut(method) {
                Some(n) => *n += 1,
                None => {
                    self.methods.insert(method.into(), 1);
                }
            }
        }
    }

    fn merge(&mut self, other: &Hits) {
        self.count += other.count;
        for (method, n) in &other.methods {
            *self.methods.entry(method.clone()).or_default() += n;
        }
    }
}

/// Values of one shape seen under a node.
#[derive(Debug, Default)]
struct ShapeBucket {
    /// Distinct literal children of this shape.
    distinct: usize,
    /// Where values of this shape go once `distinct` reached the threshold.
    overflow: Option<Box<Node>>,
}

/// One position of the observed paths.
#[derive(Debug, Default)]
pub(crate) struct Node {
    hits: Hits,
    /// Untyped segments, by (normalised) value.
    literals: BTreeMap<Box<str>, Node>,
    /// Typed segments, by [`SegmentKind`](super::SegmentKind) index.
    typed: [Option<Box<Node>>; 6],
    /// Distinct [`Class::Word`] children in `literals`.
    words: usize,
    shapes: BTreeMap<Box<str>, ShapeBucket>,
    /// Where words and shaped values go once `words` reached the threshold.
    any: Option<Box<Node>>,
}

impl Node {
    /// How many nodes inserting `segments` would create: 0 when the path
    /// follows existing nodes all the way.
    pub(crate) fn nodes_needed(
        &self,
        segments: &[Cow<'_, str>],
        options: &TemplaterOptions,
    ) -> usize {
        let Some((segment, rest)) = segments.split_first() else {
            return 0;
        };
        if let Some(child) = self.literals.get(segment.as_ref()) {
            return child.nodes_needed(rest, options);
        }
        let (existing, saturates) = match class(segment) {
            Class::Typed(kind) => (self.typed[kind.index()].as_deref(), false),
            Class::Reserved => (None, false),
            Class::Word => (
                self.any.as_deref(),
                self.words + 1 >= options.word_threshold,
            ),
            Class::Shaped(shape) => match (self.any.as_deref(), self.shapes.get(shape.as_str())) {
                (Some(any), _) => (Some(any), false),
                (None, Some(bucket)) => (
                    bucket.overflow.as_deref(),
                    bucket.distinct + 1 >= options.shape_threshold,
                ),
                // A new shape: one value is below any threshold (at least 2).
                (None, None) => (None, false),
            },
        };
        match existing {
            Some(child) => child.nodes_needed(rest, options),
            // One node per remaining segment, plus the overflow node this
            // one may open (a fresh node never reaches a threshold of 2).
            None => segments.len() + usize::from(saturates),
        }
    }

    /// Records one observation; adds the nodes it creates to `created`.
    pub(crate) fn insert(
        &mut self,
        segments: &[Cow<'_, str>],
        method: Option<&str>,
        options: &TemplaterOptions,
        created: &mut usize,
    ) {
        let Some((segment, rest)) = segments.split_first() else {
            self.hits.add(method);
            return;
        };
        let segment = segment.as_ref();
        if let Some(child) = self.literals.get_mut(segment) {
            return child.insert(rest, method, options, created);
        }
        match class(segment) {
            Class::Typed(kind) => self.typed[kind.index()]
                .get_or_insert_with(|| {
                    *created += 1;
                    Box::default()
                })
                .insert(rest, method, options, created),
            Class::Reserved => self
                .new_literal(segment, created)
                .insert(rest, method, options, created),
            Class::Word => {
                if let Some(any) = self.any.as_deref_mut() {
                    return any.insert(rest, method, options, created);
                }
                self.words += 1;
                if self.words >= options.word_threshold {
                    self.any = Some(Box::default());
                    *created += 1;
                }
                self.new_literal(segment, created)
                    .insert(rest, method, options, created);
            }
            Class::Shaped(shape) => {
                if let Some(any) = self.any.as_deref_mut() {
                    return any.insert(rest, method, options, created);
                }
                if !self.shapes.contains_key(shape.as_str()) {
                    self.shapes
                        .insert(shape.as_str().into(), ShapeBucket::default());
                }
                if let Some(bucket) = self.shapes.get_mut(shape.as_str()) {
                    if let Some(overflow) = bucket.overflow.as_deref_mut() {
                        return overflow.insert(rest, method, options, created);
                    }
                    bucket.distinct += 1;
                    if bucket.distinct >= options.shape_threshold {
                        bucket.overflow = Some(Box::default());
                        *created += 1;
                    }
                }
                self.new_literal(segment, created)
                    .insert(rest, method, options, created);
            }
        }
    }

    fn new_literal(&mut self, segment: &str, created: &mut usize) -> &mut Node {
        *created += 1;
        self.literals.entry(segment.into()).or_default()
    }
}

/// The fold's result for one template position: what [`TemplateSet`]
/// matching walks.
///
/// [`TemplateSet`]: super::TemplateSet
#[derive(Debug, Default)]
pub(crate) struct MatchNode {
    pub(crate) template: Option<usize>,
    pub(crate) literals: BTreeMap<String, MatchNode>,
    pub(crate) param: Option<(Accepts, Box<MatchNode>)>,
}

/// Folds the trie under `root` into templates (in tree order: a node's
/// template, then its literal children in byte order, then its parameter).
pub(crate) fn fold(root: &Node, options: &TemplaterOptions) -> (Vec<Template>, MatchNode) {
    let mut folder = Folder {
        options,
        templates: Vec::new(),
    };
    let mut segments = Vec::new();
    let matcher = folder.group(&[root], &mut segments, 0);
    (folder.templates, matcher)
}

struct Folder<'o> {
    options: &'o TemplaterOptions,
    templates: Vec<Template>,
}

impl Folder<'_> {
    /// Folds the concrete nodes `nodes`, which all sit at the template
    /// position `segments` (with `params` parameters so far).
    fn group(
        &mut self,
        nodes: &[&Node],
        segments: &mut Vec<TemplateSegment>,
        params: usize,
    ) -> MatchNode {
        let mut matcher = MatchNode::default();
        let mut hits = Hits::default();
        for node in nodes {
            hits.merge(&node.hits);
        }
        if hits.count > 0 {
            matcher.template = Some(self.templates.len());
            self.templates.push(Template::new(segments.clone(), hits));
        }

        let mut literals: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
        let mut typed: [Vec<&Node>; 6] = Default::default();
        let mut overflow: BTreeMap<&str, Vec<&Node>> = BTreeMap::new();
        let mut any: Vec<&Node> = Vec::new();
        for node in nodes {
            for (value, child) in &node.literals {
                literals.entry(value).or_default().push(child);
            }
            for (slot, child) in typed.iter_mut().zip(&node.typed) {
                if let Some(child) = child {
                    slot.push(child);
                }
            }
            for (shape, bucket) in &node.shapes {
                if let Some(child) = &bucket.overflow {
                    overflow.entry(shape).or_default().push(child);
                }
            }
            if let Some(child) = &node.any {
                any.push(child);
            }
        }

        let classes: Vec<(&str, Class)> = literals.keys().map(|&v| (v, class(v))).collect();
        let words = classes
            .iter()
            .filter(|(_, c)| matches!(c, Class::Word))
            .count();
        let free_form = !any.is_empty() || words >= self.options.word_threshold;
        let mut per_shape: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, c) in &classes {
            if let Class::Shaped(shape) = c {
                *per_shape.entry(shape.as_str()).or_default() += 1;
            }
        }
        let mut saturated: Vec<String> = per_shape
            .iter()
            .filter(|(_, &n)| n >= self.options.shape_threshold)
            .map(|(&shape, _)| shape.to_owned())
            .chain(overflow.keys().map(|&shape| shape.to_owned()))
            .collect();
        saturated.sort_unstable();
        saturated.dedup();

        let mut accepts = Accepts {
            free_form,
            ..Accepts::default()
        };
        let mut group: Vec<&Node> = Vec::new();
        for (i, children) in typed.iter().enumerate() {
            if !children.is_empty() {
                accepts.kinds |= 1 << i;
                group.extend(children);
            }
        }
        let mut literal_children = Vec::new();
        for (value, c) in &classes {
            let folded = match c {
                Class::Reserved => false,
                Class::Word => free_form,
                Class::Shaped(shape) => free_form || saturated.iter().any(|s| s == shape.as_str()),
                Class::Typed(_) => true,
            };
            let children = literals.get(value).map_or(&[][..], Vec::as_slice);
            if folded {
                group.extend(children);
            } else {
                literal_children.push((*value, children));
            }
        }
        for children in overflow.values() {
            group.extend(children);
        }
        group.extend(any);
        if !free_form {
            accepts.shapes = saturated;
        }

        for (value, children) in literal_children {
            segments.push(TemplateSegment::Literal(value.to_owned()));
            let child = self.group(children, segments, params);
            segments.pop();
            matcher.literals.insert(value.to_owned(), child);
        }
        if !group.is_empty() {
            let name = param_name(segments, params + 1);
            segments.push(TemplateSegment::Param(Param::new(name, accepts.clone())));
            let child = self.group(&group, segments, params + 1);
            segments.pop();
            matcher.param = Some((accepts, Box::new(child)));
        }
        matcher
    }
}
