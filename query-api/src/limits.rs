//! Limits on the shape of a query, checked before anything runs, so a
//! refused query has no effect: depth and aliases here ([`DocumentGuard`],
//! on the parsed document), complexity by async-graphql's own validation.
//!
//! Depth ignores the insides of `__schema` and `__type`: GraphiQL's own
//! introspection query nests type references about a dozen levels deep, and
//! introspection cannot reach the backends anyway (complexity and
//! async-graphql's recursion limit still bound it).
//!
//! Parsed documents are kept (by query text) and reused, since clients send
//! the same documents again and again.
//!
//! Every error raised by async-graphql itself (syntax, validation, limits,
//! argument coercion) gets the `INVALID_INPUT` code on the way out
//! (`schema::ShopSchema`).

use std::collections::HashMap;

use parking_lot::Mutex;

use async_graphql::{
    parser::types::{ExecutableDocument, Selection, SelectionSet},
    Name, Positioned, Request, ServerError, ServerResult,
};

use crate::error::tag_request_error;

/// The limits every request is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueryLimits {
    /// Deepest nesting of selection sets.
    pub max_depth: usize,
    /// Largest complexity (async-graphql's count; lists multiply by `first`).
    pub max_complexity: usize,
    /// Most aliases in one document (fragments counted where spread).
    pub max_aliases: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            max_depth: 12,
            max_complexity: 2000,
            max_aliases: 30,
        }
    }
}

/// The shape of a selection set: how deep it nests and how many aliases it holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shape {
    /// Nesting depth (a top-level leaf field is 1).
    pub depth: usize,
    /// Number of aliased fields, fragment spreads expanded.
    pub aliases: usize,
}

/// Measures every operation of `document`; the largest depth and the total of aliases.
pub fn measure(document: &ExecutableDocument) -> Shape {
    let mut measurer = Measurer {
        document,
        fragments: HashMap::new(),
    };
    document
        .operations
        .iter()
        .fold(Shape::default(), |total, (_, operation)| {
            let shape = measurer.selection_set(&operation.node.selection_set.node);
            Shape {
                depth: total.depth.max(shape.depth),
                aliases: total.aliases.saturating_add(shape.aliases),
            }
        })
}

enum Memo {
    InProgress,
    Done(Shape),
}

struct Measurer<'a> {
    document: &'a ExecutableDocument,
    fragments: HashMap<&'a Name, Memo>,
}

impl<'a> Measurer<'a> {
    fn selection_set(&mut self, set: &'a SelectionSet) -> Shape {
        let mut shape = Shape::default();
        for item in &set.items {
            let inner = match &item.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let below = self.selection_set(&field.selection_set.node);
                    let introspection = matches!(field.name.node.as_str(), "__schema" | "__type");
                    Shape {
                        depth: if introspection { 1 } else { 1 + below.depth },
                        aliases: below
                            .aliases
                            .saturating_add(usize::from(field.alias.is_some())),
                    }
                }
                Selection::InlineFragment(fragment) => {
                    self.selection_set(&fragment.node.selection_set.node)
                }
                Selection::FragmentSpread(spread) => self.fragment(&spread.node.fragment_name),
            };
            shape.depth = shape.depth.max(inner.depth);
            shape.aliases = shape.aliases.saturating_add(inner.aliases);
        }
        shape
    }

    /// A fragment is measured once, however often it is spread, so nested
    /// spreads cannot make this walk exponential; a cycle counts as empty
    /// (validation refuses cycles anyway).
    fn fragment(&mut self, name: &'a Positioned<Name>) -> Shape {
        match self.fragments.get(&name.node) {
            Some(Memo::Done(shape)) => return *shape,
            Some(Memo::InProgress) => return Shape::default(),
            None => {}
        }
        let Some(definition) = self.document.fragments.get(&name.node) else {
            return Shape::default();
        };
        self.fragments.insert(&name.node, Memo::InProgress);
        let shape = self.selection_set(&definition.node.selection_set.node);
        self.fragments.insert(&name.node, Memo::Done(shape));
        shape
    }
}

/// How many parsed documents are kept for reuse.
const PARSED_DOCUMENTS: usize = 512;

/// Parsed documents by query text, with their shapes. Clients send the same
/// few documents over and over (with different variables); parsing was half
/// the cost of a small query, a clone of the parsed document is a fraction.
#[derive(Debug, Default)]
struct ParsedDocuments {
    documents: Mutex<HashMap<String, Parsed>>,
}

/// One parsed document.
#[derive(Debug)]
struct Parsed {
    document: ExecutableDocument,
    shape: Shape,
    /// Operations (by name) that passed async-graphql's full validation once.
    validated: Vec<Option<String>>,
}

impl ParsedDocuments {
    fn get(
        &self,
        query: &str,
        operation: Option<&str>,
    ) -> Option<(ExecutableDocument, Shape, bool)> {
        let documents = self.documents.lock();
        let parsed = documents.get(query)?;
        let validated = parsed
            .validated
            .iter()
            .any(|name| name.as_deref() == operation);
        Some((parsed.document.clone(), parsed.shape, validated))
    }

    fn put(&self, query: &str, document: &ExecutableDocument, shape: Shape) {
        let mut documents = self.documents.lock();
        if documents.len() >= PARSED_DOCUMENTS {
            documents.clear();
        }
        documents.insert(
            query.to_owned(),
            Parsed {
                document: document.clone(),
                shape,
                validated: Vec::new(),
            },
        );
    }

    fn mark_validated(&self, query: &str, operation: Option<&str>) {
        if let Some(parsed) = self.documents.lock().get_mut(query) {
            if !parsed
                .validated
                .iter()
                .any(|name| name.as_deref() == operation)
            {
                parsed.validated.push(operation.map(str::to_owned));
            }
        }
    }
}

/// What [`DocumentGuard::admit`] found out about a document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Never fully validated (for this operation): validate it in full.
    New,
    /// This document and operation passed full validation before; only the
    /// rules that depend on the request (complexity, limits) need running.
    Validated,
}

/// Checks every request's document before async-graphql sees it: parses it
/// (or reuses the parse of the same text), measures it, refuses it if too
/// deep or alias-heavy, and hands the parsed document on with the request.
///
/// This is not an async-graphql extension on purpose: with any extension
/// installed, async-graphql resolves every field through its extension path
/// (a registry lookup per field), which cost a sixth of a small query.
#[derive(Debug)]
pub struct DocumentGuard {
    limits: QueryLimits,
    parsed: ParsedDocuments,
}

impl DocumentGuard {
    /// Enforces `limits`.
    pub fn new(limits: QueryLimits) -> Self {
        Self {
            limits,
            parsed: ParsedDocuments::default(),
        }
    }

    /// The limits enforced.
    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    fn check(&self, shape: Shape) -> ServerResult<()> {
        if shape.depth > self.limits.max_depth {
            metrics::counter!("query_api_refused_queries_total", "reason" => "depth").increment(1);
            return Err(refusal(format!(
                "the query is nested {} levels deep; the limit is {}",
                shape.depth, self.limits.max_depth
            )));
        }
        if shape.aliases > self.limits.max_aliases {
            metrics::counter!("query_api_refused_queries_total", "reason" => "aliases")
                .increment(1);
            return Err(refusal(format!(
                "the query uses {} aliases; the limit is {}",
                shape.aliases, self.limits.max_aliases
            )));
        }
        Ok(())
    }

    /// Parses and checks the request's document, attaching the parse to it.
    pub fn admit(&self, request: &mut Request) -> ServerResult<Admission> {
        let operation = request.operation_name.as_deref();
        if let Some((document, shape, validated)) = self.parsed.get(&request.query, operation) {
            self.check(shape)?;
            request.set_parsed_query(document);
            return Ok(if validated {
                Admission::Validated
            } else {
                Admission::New
            });
        }
        let document = async_graphql::parser::parse_query(&request.query)
            .map_err(|error| tag_request_error(ServerError::from(error)))?;
        let shape = measure(&document);
        self.check(shape)?;
        self.parsed.put(&request.query, &document, shape);
        request.set_parsed_query(document);
        Ok(Admission::New)
    }

    /// Records that `operation` of `query` passed full validation.
    pub fn mark_validated(&self, query: &str, operation: Option<&str>) {
        self.parsed.mark_validated(query, operation);
    }
}

fn refusal(message: String) -> ServerError {
    tag_request_error(ServerError::new(message, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(query: &str) -> Shape {
        measure(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn depth_counts_nested_selection_sets_and_fragments() {
        assert_eq!(shape("{ a }").depth, 1);
        assert_eq!(shape("{ a { b { c } } }").depth, 3);
        assert_eq!(
            shape("{ a { ...F } } fragment F on T { b { c { d } } }").depth,
            4
        );
        assert_eq!(shape("{ a { ... on T { b { c } } } }").depth, 3);
    }

    #[test]
    fn introspection_subtrees_do_not_count_towards_depth() {
        assert_eq!(
            shape("{ __schema { types { fields { type { ofType { ofType { name } } } } } } }")
                .depth,
            1
        );
    }

    #[test]
    fn aliases_are_counted_where_fragments_are_spread() {
        assert_eq!(shape("{ x: a y: a b }").aliases, 2);
        assert_eq!(
            shape("{ p: a { ...F } q: a { ...F } } fragment F on T { u: b v: b }").aliases,
            6
        );
    }

    #[test]
    fn fragment_cycles_and_unknown_fragments_do_not_hang_the_measure() {
        let cyclic =
            shape("{ a { ...F } } fragment F on T { b { ...G } } fragment G on T { ...F }");
        assert_eq!(cyclic.depth, 2);
        assert_eq!(shape("{ a { ...Missing } }").depth, 1);
    }
}
