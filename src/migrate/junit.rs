//! A scenario report as JUnit XML, the format CI systems read: one
//! `<testsuite>` per protocol and one for the comparison, one `<testcase>`
//! per step, a `<failure>` for each step that failed its expectations or
//! whose protocols differ (with the classified differences).

use super::scenario::{Report, StepRun};

/// Text escaped for XML element content or a double-quoted attribute:
/// `& < > " '` as entities, tab, newline and carriage return as character
/// references (an attribute keeps them), and characters XML 1.0 cannot
/// carry dropped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

struct Case {
    name: String,
    seconds: f64,
    failure: Option<(String, Vec<String>)>,
}

fn suite(out: &mut String, scenario: &str, name: &str, cases: &[Case]) {
    let failures = cases.iter().filter(|c| c.failure.is_some()).count();
    let time: f64 = cases.iter().map(|c| c.seconds).sum();
    out.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" time=\"{time:.3}\">\n",
        escape(name),
        cases.len()
    ));
    for case in cases {
        out.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"{}.{}\" time=\"{:.3}\"",
            escape(&case.name),
            escape(scenario),
            escape(name),
            case.seconds
        ));
        match &case.failure {
            None => out.push_str("/>\n"),
            Some((message, lines)) => {
                out.push_str(&format!(
                    ">\n      <failure message=\"{}\" type=\"{}\">{}</failure>\n    </testcase>\n",
                    escape(message),
                    if name == "comparison" {
                        "difference"
                    } else {
                        "expectation"
                    },
                    escape(&lines.join("\n"))
                ));
            }
        }
    }
    out.push_str("  </testsuite>\n");
}

fn step_case(step: &StepRun) -> Case {
    let failure = (!step.passed()).then(|| {
        let message = step
            .failures
            .first()
            .cloned()
            .unwrap_or_else(|| "not sent".to_string());
        (message, step.failures.clone())
    });
    Case {
        name: step.step.clone(),
        seconds: step.millis as f64 / 1000.0,
        failure,
    }
}

/// The JUnit XML document of `report`.
pub fn write(report: &Report) -> String {
    let scenario = if report.scenario.is_empty() {
        "scenario"
    } else {
        &report.scenario
    };
    let mut suites: Vec<(String, Vec<Case>)> = report
        .runs
        .iter()
        .map(|run| {
            (
                run.protocol.clone(),
                run.steps.iter().map(step_case).collect(),
            )
        })
        .collect();
    if !report.comparison.is_empty() {
        let cases = report
            .comparison
            .iter()
            .map(|row| {
                let failure = match &row.diff {
                    None => Some(("not sent over both protocols".to_string(), Vec::new())),
                    Some(d) if !d.is_same() => {
                        let lines = d.describe();
                        let message = format!(
                            "SOAP and REST differ ({} difference{})",
                            lines.len(),
                            if lines.len() == 1 { "" } else { "s" }
                        );
                        Some((message, lines))
                    }
                    Some(_) => None,
                };
                Case {
                    name: row.step.clone(),
                    seconds: 0.0,
                    failure,
                }
            })
            .collect();
        suites.push(("comparison".to_string(), cases));
    }
    let tests: usize = suites.iter().map(|(_, c)| c.len()).sum();
    let failures: usize = suites
        .iter()
        .flat_map(|(_, c)| c)
        .filter(|c| c.failure.is_some())
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"{}\" tests=\"{tests}\" failures=\"{failures}\">\n",
        escape(scenario)
    ));
    for (name, cases) in &suites {
        suite(&mut out, scenario, name, cases);
    }
    out.push_str("</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_what_xml_cannot_carry() {
        assert_eq!(
            escape("a<b & \"c\" 'd'>\n\u{1}\u{FFFF}é"),
            "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;&#10;é"
        );
    }
}
