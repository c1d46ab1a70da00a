// Lists every operation of /api/openapi.json: method, path, summary, parameters, responses.
'use strict';

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

fetch('/api/openapi.json').then((r) => r.json()).then((doc) => {
  document.getElementById('intro').append(el('p', null, doc.info.description || ''));
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!['get', 'post', 'delete', 'put', 'patch'].includes(method)) continue;
      const tag = (op.tags && op.tags[0]) || 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push({ path, method, op });
    }
  }
  const root = document.getElementById('ops');
  for (const [tag, ops] of byTag) {
    const panel = el('section', 'panel');
    panel.append(el('h3', null, tag));
    for (const { path, method, op } of ops) {
      const row = el('div');
      const head = el('p');
      head.append(el('b', null, `${method.toUpperCase()} `), el('code', null, path),
        el('span', 'msg', op.security && op.security.length && Object.keys(op.security[0]).length ? '  🔒 bearer' : ''));
      row.append(head);
      const text = op.summary || op.description;
      if (text) row.append(el('div', 'msg', text));
      const params = (op.parameters || []).map((p) => `${p.name} (${p.in}${p.required ? ', required' : ''})`);
      if (params.length) row.append(el('div', 'msg', `parameters: ${params.join(', ')}`));
      row.append(el('div', 'msg', `responses: ${Object.keys(op.responses || {}).join(', ')}`));
      panel.append(row);
    }
    root.append(panel);
  }
});
