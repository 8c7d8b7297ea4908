//! Product search: a tokenized full-text index over name, description and
//! category, ranked, with prefix matches.
//!
//! The index is an inverted list in sled: one key `"<term> <SKU>"` per term a
//! product contains, holding the term's weight in that product (name 3,
//! category 2, description 1, summed over occurrences). A query term matches
//! every indexed term it is a prefix of, by a prefix scan; an exact match
//! counts twice. Discontinued products leave the index.

use std::collections::{BTreeMap, HashMap};

use domain::{catalogue::DomainEvent, envelope::RecordedEvent, product};
use serde::{Deserialize, Serialize};

use crate::{
    name::ProjectorName,
    projection::{Projection, ProjectionError},
    viewdb::{Collection, Home, ViewDb, ViewError, ViewTx},
};

/// Indexed products by SKU.
pub const SEARCH_PRODUCTS: Collection<SearchProduct> = Collection::new("search_products");
/// The inverted index: `"<term> <SKU>"` → weight.
const POSTINGS: Collection<u32> = Collection::new("search_postings");

const NAME_WEIGHT: u32 = 3;
const CATEGORY_WEIGHT: u32 = 2;
const DESCRIPTION_WEIGHT: u32 = 1;
/// Longer words are cut to this many characters.
const MAX_TERM_CHARS: usize = 32;

/// A product as the index knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchProduct {
    /// The SKU.
    pub sku: String,
    /// Display name.
    pub name: String,
    /// Category.
    pub category: String,
    /// Whether it left the index.
    pub discontinued: bool,
    /// The terms indexed for it, with their weights.
    pub terms: BTreeMap<String, u32>,
}

/// One search result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// The product.
    pub sku: String,
    /// Its relevance: higher is better.
    pub score: u32,
}

/// Splits text into lowercase alphanumeric words.
pub fn tokenize(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(|word| {
            word.chars()
                .take(MAX_TERM_CHARS)
                .collect::<String>()
                .to_lowercase()
        })
}

fn terms_of(name: &str, description: &str, category: &str) -> BTreeMap<String, u32> {
    let mut terms = BTreeMap::new();
    for (text, weight) in [
        (name, NAME_WEIGHT),
        (category, CATEGORY_WEIGHT),
        (description, DESCRIPTION_WEIGHT),
    ] {
        for term in tokenize(text) {
            *terms.entry(term).or_insert(0u32) += weight;
        }
    }
    terms
}

fn posting_key(term: &str, sku: &str) -> String {
    format!("{term} {sku}")
}

/// Runs a query: products ranked by score (then SKU), at most `first`.
pub fn search(db: &ViewDb, query: &str, first: usize) -> Result<Vec<Hit>, ViewError> {
    let mut scores: HashMap<String, u32> = HashMap::new();
    let mut seen_terms = std::collections::HashSet::new();
    for term in tokenize(query) {
        if !seen_terms.insert(term.clone()) {
            continue;
        }
        for item in db.scan_prefix(POSTINGS, &term) {
            let (key, weight) = item?;
            let Some((indexed, sku)) = key.rsplit_once(' ') else {
                continue;
            };
            let score = if indexed == term { weight * 2 } else { weight };
            *scores.entry(sku.to_owned()).or_insert(0) += score;
        }
    }
    let mut hits: Vec<Hit> = scores
        .into_iter()
        .map(|(sku, score)| Hit { sku, score })
        .collect();
    hits.sort_by(|a, b| b.score.cmp(&a.score).then_with(|| a.sku.cmp(&b.sku)));
    hits.truncate(first);
    Ok(hits)
}

/// The search projection.
#[derive(Clone, Copy, Debug, Default)]
pub struct Search;

impl Projection for Search {
    fn name(&self) -> ProjectorName {
        ProjectorName::Search
    }

    fn categories(&self) -> &'static [&'static str] {
        &[product::STREAM_CATEGORY]
    }

    fn views(&self) -> &'static [&'static str] {
        &["search_products"]
    }

    fn layout(&self) -> u64 {
        // 2: documents hold their stream's position (see `homes`).
        2
    }

    fn homes(&self) -> Vec<Home> {
        vec![Home::new(product::STREAM_CATEGORY, SEARCH_PRODUCTS.name())]
    }

    fn apply(
        &self,
        tx: &mut ViewTx,
        event: &DomainEvent,
        _recorded: &RecordedEvent,
    ) -> Result<(), ProjectionError> {
        let DomainEvent::Product(event) = event else {
            return Ok(());
        };
        match event {
            product::Event::ProductAdded {
                sku,
                name,
                description,
                category,
                ..
            } => {
                let sku = sku.to_string();
                let terms = terms_of(name.as_str(), description.as_str(), category.as_str());
                for (term, weight) in &terms {
                    tx.put(POSTINGS, &posting_key(term, &sku), *weight)?;
                }
                let doc = SearchProduct {
                    sku: sku.clone(),
                    name: name.to_string(),
                    category: category.to_string(),
                    discontinued: false,
                    terms,
                };
                tx.put(SEARCH_PRODUCTS, &sku, doc)?;
            }
            product::Event::ProductDiscontinued { sku } => {
                let sku = sku.to_string();
                let Some(doc) = tx.get_mut(SEARCH_PRODUCTS, &sku)? else {
                    return Ok(());
                };
                doc.discontinued = true;
                let terms = std::mem::take(&mut doc.terms);
                for term in terms.keys() {
                    tx.remove(POSTINGS, &posting_key(term, &sku))?;
                }
            }
            product::Event::ProductPriceChanged { .. } => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_split_into_lowercase_words() {
        let words: Vec<String> = tokenize("Blue-Mug, 350ml (Ceramic)!").collect();
        assert_eq!(words, ["blue", "mug", "350ml", "ceramic"]);
    }

    #[test]
    fn terms_weigh_name_over_category_over_description() {
        let terms = terms_of("Mug", "a mug for tea", "kitchen");
        assert_eq!(terms["mug"], NAME_WEIGHT + DESCRIPTION_WEIGHT);
        assert_eq!(terms["kitchen"], CATEGORY_WEIGHT);
        assert_eq!(terms["tea"], DESCRIPTION_WEIGHT);
    }
}
