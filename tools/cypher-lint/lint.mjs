// Lint Cypher statements with Neo4j's own parser and semantic analysis for Cypher 5 (Neo4j 5),
// through @neo4j-cypher/language-support (the library behind Neo4j's VS Code extension and Browser).
//
// Input (stdin): a JSON array of {"name": "...", "text": "..."}.
// Output (stdout): a JSON array of {"name", "diagnostics": [{"severity", "message", "line", "column"}]}
// for every input statement, in order; severity is "error" or "warning".
//
// "Parameter $x is not defined" is dropped: statements take their values as $parameters at run
// time, and the linter only knows parameters that a client session declared. No database schema
// is given either (labels, types, procedures), so no schema-based warnings: only syntax,
// semantics and deprecations of the Cypher 5 language itself.
import { lintCypherQuery, isNotParamError } from '@neo4j-cypher/language-support';

const SEVERITY = { 1: 'error', 2: 'warning', 3: 'information', 4: 'hint' };

function readStdin() {
  return new Promise((resolve, reject) => {
    let data = '';
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => { data += chunk; });
    process.stdin.on('end', () => resolve(data));
    process.stdin.on('error', reject);
  });
}

const statements = JSON.parse(await readStdin());
const results = statements.map(({ name, text }) => {
  const { diagnostics } = lintCypherQuery(text, { defaultLanguage: 'CYPHER 5' });
  return {
    name,
    diagnostics: diagnostics.filter(isNotParamError).map((d) => ({
      severity: SEVERITY[d.severity] ?? String(d.severity),
      message: d.message,
      line: d.range.start.line + 1,
      column: d.range.start.character + 1,
    })),
  };
});
process.stdout.write(JSON.stringify(results));
