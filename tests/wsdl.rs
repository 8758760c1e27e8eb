//! `wsdl/ECGridOS.wsdl` and the operation declarations must agree exactly:
//! the same operations, parameters in the same order with the same types, the
//! same result types and the same soapActions in both bindings.

use std::collections::BTreeMap;

use ecgridos::operations::CATALOG;
use ecgridos::{AuthLevel, SessionInfo};
use quick_xml::events::Event;
use quick_xml::Reader;

#[derive(Debug, Default)]
struct Node {
    name: String,
    attrs: BTreeMap<String, String>,
    children: Vec<Node>,
}

impl Node {
    fn local(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }
    fn descendants<'a>(&'a self, out: &mut Vec<&'a Node>) {
        for c in &self.children {
            out.push(c);
            c.descendants(out);
        }
    }
    fn all(&self, local: &str) -> Vec<&Node> {
        let mut out = Vec::new();
        self.descendants(&mut out);
        out.into_iter().filter(|n| n.local() == local).collect()
    }
}

fn node(e: &quick_xml::events::BytesStart<'_>) -> Node {
    let mut node = Node {
        name: e.name().into_inner().to_string(),
        ..Node::default()
    };
    for a in e.attributes() {
        let a = a.unwrap();
        let value = a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .unwrap();
        node.attrs
            .insert(a.key.into_inner().to_string(), value.into_owned());
    }
    node
}

fn parse(text: &str) -> Node {
    let mut reader = Reader::from_str(text);
    let mut stack = vec![Node::default()];
    loop {
        match reader.read_event().unwrap() {
            Event::Start(e) => stack.push(node(&e)),
            Event::Empty(e) => stack.last_mut().unwrap().children.push(node(&e)),
            Event::End(_) => {
                let done = stack.pop().unwrap();
                stack.last_mut().unwrap().children.push(done);
            }
            Event::Eof => break,
            _ => {}
        }
    }
    stack.pop().unwrap()
}

fn wsdl() -> Node {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/wsdl/ECGridOS.wsdl"))
        .unwrap();
    let root = parse(&text);
    root.children
        .into_iter()
        .find(|n| n.local() == "definitions")
        .expect("wsdl:definitions")
}

fn schema_element<'a>(doc: &'a Node, name: &str) -> &'a Node {
    let schema = &doc.all("schema")[0];
    schema
        .children
        .iter()
        .find(|n| n.local() == "element" && n.attr("name") == Some(name))
        .unwrap_or_else(|| panic!("WSDL has no element {name}"))
}

fn sequence(element: &Node) -> Vec<(String, String)> {
    element
        .all("sequence")
        .first()
        .map(|seq| {
            seq.children
                .iter()
                .map(|c| {
                    (
                        c.attr("name").unwrap().to_string(),
                        c.attr("type").unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn operations_agree() {
    let doc = wsdl();
    let namespace = doc.attr("targetNamespace").unwrap();
    assert_eq!(namespace, ecgridos::wire::DEFAULT_NAMESPACE);

    let port_ops: Vec<_> = doc.all("portType")[0]
        .children
        .iter()
        .filter(|n| n.local() == "operation")
        .map(|n| n.attr("name").unwrap().to_string())
        .collect();
    let code_ops: Vec<_> = CATALOG.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(port_ops, code_ops, "operations in portType vs CATALOG");

    for spec in CATALOG {
        let params = sequence(schema_element(&doc, spec.name));
        let declared: Vec<_> = spec
            .params
            .iter()
            .map(|p| (p.name.to_string(), p.xsd_type.to_string()))
            .collect();
        assert_eq!(params, declared, "parameters of {}", spec.name);
        let result = sequence(schema_element(&doc, &format!("{}Response", spec.name)));
        assert_eq!(
            result,
            vec![(format!("{}Result", spec.name), spec.result_type.to_string())],
            "result of {}",
            spec.name
        );
    }

    let bindings = doc
        .all("binding")
        .into_iter()
        .filter(|b| b.attr("type").is_some())
        .collect::<Vec<_>>();
    assert_eq!(bindings.len(), 2, "a SOAP 1.1 and a SOAP 1.2 binding");
    for binding in bindings {
        let actions: Vec<_> = binding
            .children
            .iter()
            .filter(|n| n.local() == "operation")
            .map(|op| {
                let soap_op = op
                    .children
                    .iter()
                    .find(|c| c.local() == "operation")
                    .unwrap();
                assert_eq!(soap_op.attr("style"), Some("document"));
                assert!(op
                    .all("body")
                    .iter()
                    .all(|b| b.attr("use") == Some("literal")));
                (
                    op.attr("name").unwrap().to_string(),
                    soap_op.attr("soapAction").unwrap().to_string(),
                )
            })
            .collect();
        let expected: Vec<_> = CATALOG
            .iter()
            .map(|s| {
                (
                    s.name.to_string(),
                    ecgridos::wire::soap_action(namespace, s.name),
                )
            })
            .collect();
        assert_eq!(
            actions,
            expected,
            "soapActions of binding {:?}",
            binding.attr("name")
        );
    }
}

#[test]
fn types_agree() {
    let doc = wsdl();
    let info = doc
        .all("complexType")
        .into_iter()
        .find(|t| t.attr("name") == Some("SessionInfo"))
        .unwrap();
    let fields: Vec<_> = sequence(info).into_iter().map(|(n, _)| n).collect();
    assert_eq!(fields, SessionInfo::FIELDS);
    let levels: Vec<_> = doc
        .all("simpleType")
        .into_iter()
        .find(|t| t.attr("name") == Some("AuthLevel"))
        .unwrap()
        .all("enumeration")
        .into_iter()
        .map(|e| e.attr("value").unwrap().to_string())
        .collect();
    let known: Vec<_> = AuthLevel::KNOWN
        .iter()
        .map(|l| l.as_str().to_string())
        .collect();
    assert_eq!(levels, known);
}
