//! ADO.NET DataSet results (17 operations): an inline `xs:schema` followed
//! by a `diffgr:diffgram` holding the tables' rows. Read as named tables of
//! text cells, with typed access by column name.

use serde_json::{Map, Value};

use super::reader::{Start, XmlCursor};
use super::typed::{TextValue, XmlValue};
use super::{ReadError, XmlWriter};

/// One table of a [`DataSet`]: its rows, each a cell per column (`None`
/// where the row has no element for that column, which is how a DataSet
/// writes a null).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataTable {
    /// The table name (the row element name).
    pub name: String,
    /// The column names, in the order they first appear.
    pub columns: Vec<String>,
    /// The rows: one cell per column.
    pub rows: Vec<Vec<Option<String>>>,
}

impl DataTable {
    /// The index of the column called `column`.
    pub fn column(&self, column: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == column)
    }

    /// The text of `column` in row `row`; `None` when there is no such row or
    /// column, or the cell is null.
    pub fn text(&self, row: usize, column: &str) -> Option<&str> {
        let index = self.column(column)?;
        self.rows.get(row)?.get(index)?.as_deref()
    }

    /// The cell of `column` in row `row` read as `T` (`i32`, `i64`, `bool`,
    /// [`DateTime`](super::DateTime), ...): `None` when absent, an error
    /// naming the column when the text does not fit `T`.
    ///
    /// ```
    /// use ecgridos::wire::{DataSet, DataTable};
    /// let table = DataTable {
    ///     name: "Table".into(),
    ///     columns: vec!["Count".into()],
    ///     rows: vec![vec![Some("42".into())]],
    /// };
    /// assert_eq!(table.get::<i64>(0, "Count"), Some(Ok(42)));
    /// assert!(table.get::<i64>(0, "Missing").is_none());
    /// ```
    pub fn get<T: TextValue>(&self, row: usize, column: &str) -> Option<Result<T, String>> {
        self.text(row, column)
            .map(|text| T::parse_text(text).map_err(|e| format!("column {column}: {e}")))
    }

    fn add_row(&mut self, cells: Vec<(String, String)>) {
        let mut row = vec![None; self.columns.len()];
        for (column, text) in cells {
            let index = match self.column(&column) {
                Some(i) => i,
                None => {
                    self.columns.push(column);
                    for other in &mut self.rows {
                        other.push(None);
                    }
                    row.push(None);
                    self.columns.len() - 1
                }
            };
            row[index] = Some(text);
        }
        self.rows.push(row);
    }
}

/// A DataSet result: named tables.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataSet {
    /// The DataSet name (the element inside the diffgram, `NewDataSet` by
    /// default).
    pub name: String,
    /// The tables, in the order their first row appears.
    pub tables: Vec<DataTable>,
}

impl DataSet {
    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&DataTable> {
        self.tables.iter().find(|t| t.name == name)
    }

    fn table_mut(&mut self, name: &str) -> &mut DataTable {
        let index = match self.tables.iter().position(|t| t.name == name) {
            Some(i) => i,
            None => {
                self.tables.push(DataTable {
                    name: name.to_string(),
                    ..DataTable::default()
                });
                self.tables.len() - 1
            }
        };
        &mut self.tables[index]
    }

    fn read_rows(&mut self, cur: &mut XmlCursor<'_>) -> Result<(), ReadError> {
        while let Some(row) = cur.next_child()? {
            let mut cells = Vec::new();
            if !row.empty {
                while let Some(cell) = cur.next_child()? {
                    let name = cell.local.to_string();
                    let text = cur.text(&cell)?;
                    if !cell.nil {
                        cells.push((name, text.into_owned()));
                    }
                }
            }
            self.table_mut(row.local).add_row(cells);
        }
        Ok(())
    }
}

const SCHEMA_OPEN: &str = r#"<xs:schema id="{}" xmlns="" xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:msdata="urn:schemas-microsoft-com:xml-msdata">"#;

impl XmlValue for DataSet {
    fn read_xml(cur: &mut XmlCursor<'_>, start: &Start<'_>) -> Result<Self, ReadError> {
        let mut set = DataSet::default();
        if start.empty {
            return Ok(set);
        }
        while let Some(child) = cur.next_child()? {
            if child.local != "diffgram" || child.empty {
                cur.skip(&child)?;
                continue;
            }
            while let Some(inner) = cur.next_child()? {
                if matches!(inner.local, "before" | "errors") || !set.name.is_empty() {
                    cur.skip(&inner)?;
                    continue;
                }
                set.name = inner.local.to_string();
                if !inner.empty {
                    set.read_rows(cur)?;
                }
            }
        }
        Ok(set)
    }

    fn write_content(&self, w: &mut XmlWriter<'_>) {
        let name = if self.name.is_empty() {
            "NewDataSet"
        } else {
            &self.name
        };
        w.markup(&SCHEMA_OPEN.replace("{}", name));
        w.markup(&format!(
            r#"<xs:element name="{name}" msdata:IsDataSet="true"><xs:complexType><xs:choice minOccurs="0" maxOccurs="unbounded">"#
        ));
        for table in &self.tables {
            w.markup(&format!(
                r#"<xs:element name="{}"><xs:complexType><xs:sequence>"#,
                table.name
            ));
            for column in &table.columns {
                w.markup(&format!(
                    r#"<xs:element name="{column}" type="xs:string" minOccurs="0" />"#
                ));
            }
            w.markup("</xs:sequence></xs:complexType></xs:element>");
        }
        w.markup("</xs:choice></xs:complexType></xs:element></xs:schema>");
        w.markup(r#"<diffgr:diffgram xmlns:msdata="urn:schemas-microsoft-com:xml-msdata" xmlns:diffgr="urn:schemas-microsoft-com:xml-diffgram-v1">"#);
        w.markup(&format!("<{name} xmlns=\"\">"));
        for table in &self.tables {
            for (i, row) in table.rows.iter().enumerate() {
                w.markup(&format!(
                    r#"<{t} diffgr:id="{t}{n}" msdata:rowOrder="{i}">"#,
                    t = table.name,
                    n = i + 1
                ));
                for (column, cell) in table.columns.iter().zip(row) {
                    if let Some(text) = cell {
                        w.leaf(column, text);
                    }
                }
                w.close(&table.name);
            }
        }
        w.close(name);
        w.markup("</diffgr:diffgram>");
    }

    /// `{"Table": [{"Column": "text", ...}, ...], ...}`; a null cell is
    /// `null`.
    fn to_json(&self) -> Value {
        let mut tables = Map::new();
        for table in &self.tables {
            let rows = table
                .rows
                .iter()
                .map(|row| {
                    let cells = table
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| {
                            let v = v.as_ref().map_or(Value::Null, |t| Value::String(t.clone()));
                            (c.clone(), v)
                        })
                        .collect();
                    Value::Object(cells)
                })
                .collect();
            tables.insert(table.name.clone(), Value::Array(rows));
        }
        Value::Object(tables)
    }
}

super::typed::result_value!(DataSet, "dataset");
