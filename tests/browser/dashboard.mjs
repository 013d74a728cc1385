// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
// Drives caelumd's dashboard in Debian's Chromium for tests/integration/test_dashboard.py.
//
// usage: node dashboard.mjs --url URL --port PORT --owner SERVICE --screenshot FILE
//                           [--token TOKEN --reserve PORT --service SERVICE]
//                           [--feed-ms 2000] [--chromium /usr/bin/chromium]
//        node dashboard.mjs --url URL --screenshot FILE --cluster HOST[,HOST...]
//                           --where SERVICE=HOST
//
// With --cluster (etcd backend): the cluster view must list every HOST up and SERVICE
// running on HOST; then a screenshot, "OK {...}" and exit 0. Without it (file backend) the
// cluster view must show the API's "no machine registry" error.
//
// Protocol on stdio: once the page shows PORT reserved by SERVICE (and, with --token, a
// reservation and a release made through the page's own form), prints "READY". The caller
// then causes real denied binds and writes "DENIED P [P...]"; every P must show up as a
// bind_denied row of the live feed within --feed-ms of that line, and in the port map with
// its count. Then a full-page screenshot, "OK {...}" and exit 0. Any failure, console error,
// page error, failed request or unexpected HTTP error status: "FAIL: why" on stderr, exit 1.
import {createInterface} from 'node:readline';
import {chromium} from 'playwright-core';

function parseArgs(argv) {
	const a = {feedMs: 2000, chromium: '/usr/bin/chromium'};
	const keys = {
		'--url': 'url',
		'--port': 'port',
		'--owner': 'owner',
		'--screenshot': 'screenshot',
		'--token': 'token',
		'--reserve': 'reserve',
		'--service': 'service',
		'--feed-ms': 'feedMs',
		'--chromium': 'chromium',
		'--cluster': 'cluster',
		'--where': 'where',
	};
	for (let i = 0; i < argv.length; i += 2) {
		const k = keys[argv[i]];
		if (!k || argv[i + 1] === undefined)
			throw new Error(`usage: unknown or incomplete argument "${argv[i]}"`);
		a[k] = argv[i + 1];
	}
	if (a.cluster && !/^[^=]+=[^=]+$/.test(a.where || ''))
		throw new Error('usage: --cluster needs --where SERVICE=HOST');
	for (const k of a.cluster ? ['url', 'screenshot'] : ['url', 'port', 'owner', 'screenshot'])
		if (!a[k]) throw new Error(`usage: --${k} is required`);
	if (a.token && (!a.reserve || !a.service))
		throw new Error('usage: --token needs --reserve and --service');
	a.feedMs = Number(a.feedMs);
	return a;
}

class Check extends Error {}

function fail(msg) {
	throw new Check(msg);
}

// Lines from the caller, one at a time.
function stdinLines() {
	const rl = createInterface({input: process.stdin});
	const queue = [],
		waiters = [];
	let closed = false;
	rl.on('line', (l) => (waiters.length ? waiters.shift()(l) : queue.push(l)));
	rl.on('close', () => {
		closed = true;
		waiters.splice(0).forEach((w) => w(null));
	});
	return {
		next: () =>
			queue.length
				? Promise.resolve(queue.shift())
				: closed
					? Promise.resolve(null)
					: new Promise((r) => waiters.push(r)),
		close: () => rl.close(),
	};
}

// The state of a port's cells (a port may sit in two ranges: the first one counts).
async function cellState(page, port) {
	return page.evaluate((p) => {
		const c = document.querySelector(`#port-map .cell[data-port="${p}"]`);
		return c
			? {
					state: c.dataset.state,
					owner: c.dataset.owner || null,
					denials: Number(c.dataset.denials || 0),
					title: c.title,
				}
			: null;
	}, String(port));
}

// want: {state, owner, minDenials}; every given key must hold.
async function waitCell(page, port, want, what, timeout = 10000) {
	try {
		await page.waitForFunction(
			({p, w}) => {
				const c = document.querySelector(
					`#port-map .cell[data-port="${p}"]`,
				);
				return (
					!!c &&
					(w.state === undefined || c.dataset.state === w.state) &&
					(w.owner === undefined || c.dataset.owner === w.owner) &&
					(w.minDenials === undefined ||
						Number(c.dataset.denials || 0) >= w.minDenials)
				);
			},
			{p: String(port), w: want},
			{timeout},
		);
	} catch (e) {
		fail(
			`port ${port}: expected ${what} within ${timeout} ms; the cell is ` +
				`${JSON.stringify(await cellState(page, port))}`,
		);
	}
}

async function waitFor(page, selector, what, timeout = 10000) {
	try {
		await page.waitForSelector(selector, {state: 'attached', timeout});
	} catch (e) {
		fail(`${what}: no ${selector} within ${timeout} ms`);
	}
}

// Reserve and release through the form, with the token asked for by the page itself.
async function mutations(page, a, allowHttpError) {
	const reserve = String(a.reserve);
	await page.fill('#pf-port', reserve);
	await page.selectOption('#pf-proto', 'tcp');
	await page.selectOption('#pf-service', a.service);
	await page.click('#pf-reserve');
	await waitFor(
		page,
		'#token-dialog[open]',
		'a change without a token should ask for it',
		3000,
	);
	await page.fill('#token-input', a.token);
	await page.click('#token-save');
	await waitCell(
		page,
		reserve,
		{state: 'reserved', owner: a.service},
		`reserved by ${a.service} after "Reserve"`,
	);
	const kept = await page.evaluate(() => sessionStorage.getItem('caelum.token'));
	if (kept !== a.token) fail('the token was not kept in sessionStorage');

	// An API error must reach the operator: reserve the owner's port for another service.
	allowHttpError.add('POST /api/v1/ports');
	await page.fill('#pf-port', String(a.port));
	await page.selectOption('#pf-service', a.service);
	await page.click('#pf-reserve');
	try {
		await page.waitForSelector('#pf-msg[data-tone="bad"]', {timeout: 5000});
		await page.waitForSelector('.toast[data-tone="bad"]', {timeout: 1000});
	} catch (e) {
		fail(`reserving ${a.port} (held by ${a.owner}) for ${a.service}: no error shown`);
	}
	const msg = (await page.textContent('#pf-msg')).trim();
	if (!msg || /HTTP \d+$/.test(msg)) fail(`the API's error message is not shown: "${msg}"`);
	allowHttpError.delete('POST /api/v1/ports');
	await waitCell(page, a.port, {owner: a.owner}, `still owned by ${a.owner}`);

	// Release takes two clicks.
	await page.fill('#pf-port', reserve);
	await page.click('#pf-release');
	if ((await page.getAttribute('#pf-release', 'data-confirm')) !== 'true')
		fail('release did not ask for confirmation');
	await page.click('#pf-release');
	await waitCell(page, reserve, {state: 'free'}, 'free after "Release"');
	return msg;
}

// The cluster view of an etcd-backed host: every host up, the service found on its host.
async function clusterView(page, a) {
	for (const name of a.cluster.split(','))
		await waitFor(
			page,
			`#cluster-hosts tr[data-host="${name}"][data-state="up"]`,
			`host ${name} up in the cluster view`,
			15000,
		);
	const [svc, on] = a.where.split('=');
	await waitFor(
		page,
		`#cluster-where tr[data-service="${svc}"] .chip[data-host="${on}"]`,
		`${svc} running on ${on} in the cluster view`,
		15000,
	);
	return page.evaluate(() => ({
		error_hidden: document.getElementById('cluster-error').hidden,
		sub: document.getElementById('cluster-sub').textContent,
		hosts: [...document.querySelectorAll('#cluster-hosts tr')].map((r) => ({
			name: r.dataset.host,
			state: r.dataset.state,
			runs: [...r.querySelectorAll('.chip')].map((c) => c.dataset.service),
		})),
		where: Object.fromEntries(
			[...document.querySelectorAll('#cluster-where tr')].map((r) => [
				r.dataset.service,
				[...r.querySelectorAll('.chip')].map((c) => c.dataset.host),
			]),
		),
	}));
}

async function main() {
	const a = parseArgs(process.argv.slice(2));
	const problems = [];
	// The file backend has no machine registry: the cluster view's request is refused.
	const allowHttpError = new Set(a.cluster ? [] : ['GET /api/v1/hosts']);
	let closing = false;
	const browser = await chromium.launch({
		executablePath: a.chromium,
		headless: true,
		args: [
			'--headless',
			'--no-sandbox',
			'--disable-gpu',
			'--disable-background-networking',
		],
	});
	const input = stdinLines();
	try {
		const page = await browser.newPage({viewport: {width: 1440, height: 900}});
		page.on('console', (m) => {
			// Chromium logs every HTTP error status; the one this script provokes is expected.
			const from = m.location().url ? new URL(m.location().url).pathname : '';
			if (
				m.type() === 'error' &&
				/^Failed to load resource: the server responded with a status of [45]\d\d/.test(
					m.text(),
				) &&
				[...allowHttpError].some((x) => x.endsWith(` ${from}`))
			)
				return;
			if (
				m.type() === 'error' ||
				(m.type() === 'warning' && m.text().startsWith('dashboard:'))
			)
				problems.push(
					`console ${m.type()}: ${m.text()}${from ? ` (${from})` : ''}`,
				);
		});
		page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
		page.on('requestfailed', (r) => {
			// Closing the page aborts the open event stream: that is not the page's fault.
			if (!closing)
				problems.push(
					`request failed: ${r.method()} ${r.url()}: ${r.failure()?.errorText}`,
				);
		});
		page.on('response', (r) => {
			const path = new URL(r.url()).pathname;
			if (
				r.status() >= 400 &&
				!allowHttpError.has(`${r.request().method()} ${path}`)
			)
				problems.push(
					`HTTP ${r.status()} for ${r.request().method()} ${r.url()}`,
				);
		});
		const check = () => {
			if (problems.length)
				fail(`the page reported problems:\n  ${problems.join('\n  ')}`);
		};

		const resp = await page.goto(a.url, {waitUntil: 'load'});
		if (!resp || resp.status() !== 200)
			fail(`GET ${a.url}: HTTP ${resp && resp.status()}`);
		const csp = resp.headers()['content-security-policy'] || '';
		if (!csp.includes("script-src 'self'"))
			fail(`the page was served without its CSP: "${csp}"`);
		await waitFor(page, '#api-state[data-state="ok"]', 'the API indicator');
		if (a.cluster) {
			const view = await clusterView(page, a);
			await page.screenshot({path: a.screenshot, fullPage: true});
			check();
			closing = true;
			process.stdout.write(`OK ${JSON.stringify({cluster: view})}\n`);
			return;
		}
		await waitFor(
			page,
			'#cluster-error:not([hidden])',
			'the cluster view showing why there is no machine registry',
		);
		const clusterError = (await page.textContent('#cluster-error')).trim();
		await waitCell(
			page,
			a.port,
			{state: 'reserved', owner: a.owner},
			`reserved by ${a.owner}`,
		);
		const reserved = await cellState(page, a.port);
		if (!reserved.title.includes(`reserved by ${a.owner}`))
			fail(
				`port ${a.port}: the tooltip does not name the owner: "${reserved.title}"`,
			);
		await waitFor(
			page,
			'#port-map .cell[data-state="free"]',
			'free ports of the managed range',
		);
		await waitFor(
			page,
			`#svc-body tr[data-service="${a.owner}"]`,
			'the services table',
		);
		await waitFor(
			page,
			'#component-cards .card[data-component="ports"][data-attached="true"][data-mode="enforce"]',
			'the ports component, enforcing and attached',
		);
		await waitFor(
			page,
			'#verify-summary[data-ok="true"]',
			'a passed self-verification',
		);
		await waitFor(
			page,
			'#resource-bars .res[data-dimension="cpus"]',
			'the resources panel',
		);
		await waitFor(page, '#chart .uplot canvas', 'the uPlot violations chart');
		await waitFor(page, '#sse-state[data-state="live"]', 'the live event stream');
		let errorShown = null;
		if (a.token) errorShown = await mutations(page, a, allowHttpError);
		check();
		process.stdout.write('READY\n');

		const line = await input.next();
		if (line === null) fail('stdin closed before "DENIED PORT..."');
		const t0 = Date.now();
		const m = /^DENIED((?: \d+)+)$/.exec(line.trim());
		if (!m) fail(`expected "DENIED PORT...", got "${line}"`);
		const ports = m[1].trim().split(' ');
		const seen = {};
		for (const p of ports) {
			const left = Math.max(1, a.feedMs - (Date.now() - t0));
			try {
				await page.waitForSelector(
					`#feed tr[data-type="bind_denied"][data-port="${p}"]`,
					{state: 'attached', timeout: left},
				);
			} catch (e) {
				const rows = await page.$$eval('#feed tr[data-id]', (rs) =>
					rs
						.slice(0, 8)
						.map(
							(r) =>
								`${r.dataset.id} ${r.dataset.type} ${r.dataset.port || ''}`,
						),
				);
				fail(
					`no bind_denied row for port ${p} in the live feed within ${a.feedMs} ms of the ` +
						`signal; newest rows: ${JSON.stringify(rows)}`,
				);
			}
			seen[p] = Date.now() - t0;
		}
		for (const p of ports)
			await waitCell(
				page,
				p,
				{minDenials: 1},
				'its denied binds counted in the port map',
				6000,
			);
		const cells = {};
		for (const p of ports) cells[p] = await cellState(page, p);
		// The picture shows the page, not the notices of the form checks above.
		await page.$$eval('.toast', (ts) => ts.forEach((t) => t.remove()));
		await page.waitForTimeout(600); // let the row highlight fade
		await page.screenshot({path: a.screenshot, fullPage: true});
		check();
		closing = true;
		process.stdout.write(
			`OK ${JSON.stringify({reserved, feed_ms: seen, cells, error_shown: errorShown, cluster_error: clusterError})}\n`,
		);
	} finally {
		closing = true;
		input.close();
		await browser.close();
	}
}

main().then(
	() => process.exit(0),
	(e) => {
		process.stderr.write(`FAIL: ${e instanceof Check ? e.message : e.stack || e}\n`);
		process.exit(1);
	},
);
