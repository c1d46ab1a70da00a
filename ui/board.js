// Crowd board: /api/v1/public/areas every 30 s, no token. `?area=ID` shows one area, large.
'use strict';

const params = new URLSearchParams(location.search);
const only = params.get('area');

function row(a) {
  const closed = !a.open;
  const cls = closed ? 'closed' : a.comfort;
  const el = document.createElement('div');
  el.className = `row c-${cls}`;
  el.dataset.area = a.id;
  const name = document.createElement('div');
  name.className = 'name';
  name.textContent = a.name_zh;
  const en = document.createElement('small');
  en.textContent = a.name_en;
  name.append(en);
  const comfort = document.createElement('div');
  comfort.className = 'comfort';
  comfort.textContent = closed ? '暂停开放' : a.comfort_zh;
  const sub = document.createElement('small');
  sub.textContent = closed ? 'Closed' : a.comfort_en;
  comfort.append(sub);
  el.append(name, comfort);
  // Areas selling timed entry: places left today (余票), or why none are sold.
  if (a.tickets && !closed) {
    const t = document.createElement('div');
    t.className = 'tickets';
    const left = a.tickets.remaining_today;
    t.textContent = a.tickets.sales !== 'open' ? '暂停售票 Sales paused'
      : left > 0 ? `余票 ${left.toLocaleString('zh-CN')} left` : '约满 Full';
    el.append(t);
  }
  return el;
}

async function refresh() {
  try {
    const r = await fetch('/api/v1/public/areas', { cache: 'no-store' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const body = await r.json();
    const list = body.areas.filter((a) => !only || a.id === only);
    document.getElementById('areas').replaceChildren(...list.map(row));
    document.body.classList.toggle('single', Boolean(only));
    document.getElementById('areas').classList.toggle('one', Boolean(only));
    document.body.classList.remove('stale');
  } catch (e) {
    document.body.classList.add('stale');
  }
}

function clock() {
  document.getElementById('time').textContent = new Date().toLocaleTimeString('zh-CN', { hour12: false, hour: '2-digit', minute: '2-digit' });
}

refresh();
clock();
setInterval(refresh, 30000);
setInterval(clock, 10000);
