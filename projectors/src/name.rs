//! The ten read models by name.

use std::{fmt, str::FromStr};

/// Names one projector (and its read model).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ProjectorName {
    /// Orders with their status timeline.
    Orders,
    /// Customer history.
    Customers,
    /// The catalog with stock levels.
    Catalog,
    /// Stock per SKU.
    Inventory,
    /// Full-text product search.
    Search,
    /// Bought-together counts.
    Recommendations,
    /// The notification outbox.
    Notifications,
    /// Sales statistics.
    Sales,
    /// Shopping carts.
    Carts,
    /// Wishlists.
    Wishlists,
}

/// An unknown projector name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown projector {given:?}; expected one of: {}",
    ProjectorName::list()
)]
pub struct UnknownProjector {
    /// What was given.
    pub given: String,
}

impl ProjectorName {
    /// Every projector, in port order.
    pub const ALL: [ProjectorName; 10] = [
        Self::Orders,
        Self::Customers,
        Self::Catalog,
        Self::Inventory,
        Self::Search,
        Self::Recommendations,
        Self::Notifications,
        Self::Sales,
        Self::Carts,
        Self::Wishlists,
    ];

    /// The name as used on the command line, in URLs, queue names and directories.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orders => "orders",
            Self::Customers => "customers",
            Self::Catalog => "catalog",
            Self::Inventory => "inventory",
            Self::Search => "search",
            Self::Recommendations => "recommendations",
            Self::Notifications => "notifications",
            Self::Sales => "sales",
            Self::Carts => "carts",
            Self::Wishlists => "wishlists",
        }
    }

    /// The port it listens on by default (docs/internal-apis.md).
    pub fn default_port(self) -> u16 {
        match self {
            Self::Orders => 7101,
            Self::Customers => 7102,
            Self::Catalog => 7103,
            Self::Inventory => 7104,
            Self::Search => 7105,
            Self::Recommendations => 7106,
            Self::Notifications => 7107,
            Self::Sales => 7108,
            Self::Carts => 7109,
            Self::Wishlists => 7110,
        }
    }

    /// Parses a name (case-insensitive).
    pub fn parse(raw: &str) -> Result<Self, UnknownProjector> {
        let wanted = raw.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|name| name.as_str() == wanted)
            .ok_or_else(|| UnknownProjector {
                given: raw.to_owned(),
            })
    }

    fn list() -> String {
        Self::ALL.map(Self::as_str).join(", ")
    }
}

impl fmt::Display for ProjectorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProjectorName {
    type Err = UnknownProjector;
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_parses_back_and_has_its_documented_port() {
        for (index, name) in ProjectorName::ALL.into_iter().enumerate() {
            assert_eq!(ProjectorName::parse(name.as_str()), Ok(name));
            assert_eq!(usize::from(name.default_port()), 7101 + index);
        }
        assert_eq!(ProjectorName::parse(" Orders "), Ok(ProjectorName::Orders));
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_list_of_known_ones() {
        let err = ProjectorName::parse("invoices").unwrap_err();
        assert!(err.to_string().contains("orders, customers"), "{err}");
    }
}
