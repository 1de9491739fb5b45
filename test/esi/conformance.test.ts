import { describe, expect, it } from 'vitest'
import { compile } from '../../src/esi/index.js'
import { esiFragment, run, type RunOptions } from './helpers.js'

/**
 * Table-driven conformance suite for the ESI 1.0 constructs strata supports (W3C ESI Language
 * Specification 1.0 §3–§5). Each row: a template, the request, the fragments, the exact output.
 */
interface Row extends RunOptions {
  name: string
  template: string
  expected: string
}

const frags = { '/a': 'A', '/b': 'B', '/c': 'C' }

const rows: Row[] = [
  // §3.1 include
  { name: 'include alone', template: 'x<esi:include src="/a"/>y', fragments: frags, expected: 'xAy' },
  { name: 'include without space before />', template: '<esi:include src="/a"/>', fragments: frags, expected: 'A' },
  { name: 'include with single quotes', template: "<esi:include src='/a' />", fragments: frags, expected: 'A' },
  { name: 'include open+close form ignores body', template: '<esi:include src="/a">junk</esi:include>!', fragments: frags, expected: 'A!' },
  { name: 'several includes keep document order', template: '<esi:include src="/c"/>-<esi:include src="/a"/>-<esi:include src="/b"/>', fragments: frags, expected: 'C-A-B' },
  { name: 'relative src resolves against page path', url: 'http://site.test/dir/page', template: '<esi:include src="frag"/>', fragments: { '/dir/frag': 'F' }, expected: 'F' },
  { name: 'src with entity-encoded query', template: '<esi:include src="/q?a=1&amp;b=2"/>', fragments: { '/q?a=1&b=2': 'Q' }, expected: 'Q' },
  { name: 'alt used when src fails', template: '<esi:include src="/missing" alt="/b"/>', fragments: frags, expected: 'B' },
  { name: 'alt not fetched when src works', template: '<esi:include src="/a" alt="/b"/>', fragments: frags, expected: 'A' },
  { name: 'onerror=continue emits nothing', template: '[<esi:include src="/missing" onerror="continue"/>]', fragments: frags, expected: '[]' },
  { name: 'src and alt both fail with onerror=continue', template: '[<esi:include src="/x" alt="/y" onerror="continue"/>]', fragments: frags, expected: '[]' },
  { name: 'failure without handling, onError continue', template: '[<esi:include src="/missing"/>]', fragments: frags, expected: '[]' },
  { name: 'fragment 500 without alt', template: '[<esi:include src="/e"/>]', fragments: { '/e': { statusCode: 500, body: Buffer.from('boom') } }, expected: '[]' },
  { name: 'fragment 500 with alt', template: '[<esi:include src="/e" alt="/a"/>]', fragments: { '/e': { statusCode: 500, body: Buffer.from('boom') }, '/a': 'A' }, expected: '[A]' },
  { name: 'fragment 302 is a failure, not spliced', template: '[<esi:include src="/r" alt="/a"/>]', fragments: { '/r': { statusCode: 302, body: Buffer.from('Found') }, '/a': 'A' }, expected: '[A]' },
  { name: 'empty 204 fragment', template: '[<esi:include src="/n"/>]', fragments: { '/n': { statusCode: 204 } }, expected: '[]' },
  { name: 'fragment bytes are not escaped or re-parsed', template: '<esi:include src="/h"/>', fragments: { '/h': '<b>$(HTTP_HOST)</b><esi:include src="/a"/>' }, expected: '<b>$(HTTP_HOST)</b><esi:include src="/a"/>' },
  { name: 'nested ESI fragment is assembled', template: '<esi:include src="/outer"/>', fragments: { '/outer': esiFragment('(<esi:include src="/a"/>)'), '/a': 'A' }, expected: '(A)' },
  { name: 'nested relative src resolves against the fragment URL', template: '<esi:include src="/f/outer"/>', fragments: { '/f/outer': esiFragment('(<esi:include src="inner"/>)'), '/f/inner': 'I' }, expected: '(I)' },

  // §3.6 remove, §3.5 comment, §3.7 <!--esi
  { name: 'remove', template: 'a<esi:remove>gone <esi:include src="/a"/></esi:remove>b', fragments: frags, expected: 'ab' },
  { name: 'remove is not processed inside', template: 'a<esi:remove><esi:try></esi:remove>b', expected: 'ab' },
  { name: 'comment', template: 'a<esi:comment text="note"/>b', expected: 'ab' },
  { name: 'esi comment: content processed, markers removed', template: 'a<!--esi <esi:include src="/a"/> -->b', fragments: frags, expected: 'a A b' },
  { name: 'esi comment with plain text', template: '<!--esi <p>x</p>-->', expected: ' <p>x</p>' },
  { name: 'esi comment empty', template: 'a<!--esi-->b', expected: 'ab' },
  { name: 'esifoo is an ordinary comment', template: '<!--esifoo--><esi:comment text=""/>', expected: '<!--esifoo-->' },
  { name: 'ordinary HTML comment kept; ESI inside it is processed', template: '<!-- c <esi:include src="/a"/> -->', fragments: frags, expected: '<!-- c A -->' },

  // §3.4 try
  { name: 'try: attempt succeeds', template: '<esi:try><esi:attempt>[<esi:include src="/a"/>]</esi:attempt><esi:except>E</esi:except></esi:try>', fragments: frags, expected: '[A]' },
  { name: 'try: attempt fails → except', template: '<esi:try><esi:attempt>[<esi:include src="/x"/>]</esi:attempt><esi:except>E<esi:include src="/b"/></esi:except></esi:try>', fragments: frags, expected: 'EB' },
  { name: 'try: alt inside attempt recovers', template: '<esi:try><esi:attempt><esi:include src="/x" alt="/a"/></esi:attempt><esi:except>E</esi:except></esi:try>', fragments: frags, expected: 'A' },
  { name: 'try: onerror=continue inside attempt does not trigger except', template: '<esi:try><esi:attempt>[<esi:include src="/x" onerror="continue"/>]</esi:attempt><esi:except>E</esi:except></esi:try>', fragments: frags, expected: '[]' },
  { name: 'try: whitespace between branches dropped', template: '<esi:try>\n  <esi:attempt>A</esi:attempt>\n  <esi:except>E</esi:except>\n</esi:try>', expected: 'A' },
  { name: 'nested try: inner except handles, outer attempt kept', template: '<esi:try><esi:attempt>o(<esi:try><esi:attempt><esi:include src="/x"/></esi:attempt><esi:except>ie</esi:except></esi:try>)</esi:attempt><esi:except>OE</esi:except></esi:try>', fragments: frags, expected: 'o(ie)' },
  { name: 'nested try: failing inner except fails outer attempt', template: '<esi:try><esi:attempt>o(<esi:try><esi:attempt><esi:include src="/x"/></esi:attempt><esi:except><esi:include src="/y"/></esi:except></esi:try>)</esi:attempt><esi:except>OE</esi:except></esi:try>', fragments: frags, expected: 'OE' },
  { name: 'try without except: failure renders nothing', template: '[<esi:try><esi:attempt>x<esi:include src="/x"/></esi:attempt></esi:try>]', fragments: frags, expected: '[]' },

  // §3.3 choose
  { name: 'choose: first true when', headers: { cookie: 'group=beta' }, template: "<esi:choose><esi:when test=\"$(HTTP_COOKIE{group})=='beta'\">B</esi:when><esi:when test=\"1==1\">second</esi:when><esi:otherwise>O</esi:otherwise></esi:choose>", expected: 'B' },
  { name: 'choose: otherwise', headers: { cookie: 'group=alpha' }, template: "<esi:choose><esi:when test=\"$(HTTP_COOKIE{group})=='beta'\">B</esi:when><esi:otherwise>O</esi:otherwise></esi:choose>", expected: 'O' },
  { name: 'choose: no match, no otherwise', template: "[<esi:choose><esi:when test=\"1==2\">x</esi:when></esi:choose>]", expected: '[]' },
  { name: 'choose: query string', url: 'http://site.test/p?lang=de&x=1', template: "<esi:choose><esi:when test=\"$(QUERY_STRING{lang})=='de'\">Hallo</esi:when><esi:otherwise>Hello</esi:otherwise></esi:choose>", expected: 'Hallo' },
  { name: 'choose: numeric comparison', url: 'http://site.test/p?n=10', template: '<esi:choose><esi:when test="$(QUERY_STRING{n}) > 9">big</esi:when><esi:otherwise>small</esi:otherwise></esi:choose>', expected: 'big' },
  { name: 'choose: string comparison when not both numeric', url: 'http://site.test/p?n=10a', template: "<esi:choose><esi:when test=\"$(QUERY_STRING{n}) > '9'\">gt</esi:when><esi:otherwise>le</esi:otherwise></esi:choose>", expected: 'le' },
  { name: 'choose: & | ! and parentheses', headers: { cookie: 'a=1; b=2' }, template: "<esi:choose><esi:when test=\"($(HTTP_COOKIE{a})==1 &amp; !($(HTTP_COOKIE{b})==3)) | $(HTTP_COOKIE{c})=='x'\">yes</esi:when><esi:otherwise>no</esi:otherwise></esi:choose>", expected: 'yes' },
  { name: 'choose: accept-language list', headers: { 'accept-language': 'fr-CH, de;q=0.8' }, template: '<esi:choose><esi:when test="$(HTTP_ACCEPT_LANGUAGE{en})">en</esi:when><esi:when test="$(HTTP_ACCEPT_LANGUAGE{de})">de</esi:when></esi:choose>', expected: 'de' },
  { name: 'choose: includes in the taken branch only', headers: { cookie: 'u=1' }, template: '<esi:choose><esi:when test="$(HTTP_COOKIE{u})==1"><esi:include src="/a"/></esi:when><esi:otherwise><esi:include src="/b"/></esi:otherwise></esi:choose>', fragments: frags, expected: 'A' },
  { name: 'choose: missing cookie compares false even with !=', template: "<esi:choose><esi:when test=\"$(HTTP_COOKIE{u}) != 'bob'\">ne</esi:when><esi:otherwise>undefined</esi:otherwise></esi:choose>", expected: 'undefined' },
  { name: 'choose: default makes a missing cookie comparable', template: "<esi:choose><esi:when test=\"$(HTTP_COOKIE{u}|'anon') == 'anon'\">anon</esi:when></esi:choose>", expected: 'anon' },
  { name: 'choose nested in try nested in choose', headers: { cookie: 'x=1' }, template: '<esi:choose><esi:when test="$(HTTP_COOKIE{x})==1"><esi:try><esi:attempt><esi:choose><esi:when test="1==1"><esi:include src="/a"/></esi:when></esi:choose></esi:attempt><esi:except>E</esi:except></esi:try></esi:when></esi:choose>', fragments: frags, expected: 'A' },

  // §3.7 vars, §4 variables
  { name: 'vars: cookie', headers: { cookie: 'name=Ann' }, template: '<esi:vars>Hi $(HTTP_COOKIE{name})</esi:vars>', expected: 'Hi Ann' },
  { name: 'vars: default when missing', template: "<esi:vars>Hi $(HTTP_COOKIE{name}|'anon')</esi:vars>", expected: 'Hi anon' },
  { name: 'vars: unquoted default', template: '<esi:vars>Hi $(HTTP_COOKIE{name}|guest)</esi:vars>', expected: 'Hi guest' },
  { name: 'vars: whole cookie header', headers: { cookie: 'a=1; b=2' }, template: '<esi:vars>$(HTTP_COOKIE)</esi:vars>', expected: 'a=1; b=2' },
  { name: 'vars: host and referer', headers: { host: 'site.test', referer: 'http://r.test/' }, template: '<esi:vars>$(HTTP_HOST) $(HTTP_REFERER)</esi:vars>', expected: 'site.test http://r.test/' },
  { name: 'vars: query param and whole query', url: 'http://site.test/p?q=a%20b&z=1', template: '<esi:vars>$(QUERY_STRING{q})|$(QUERY_STRING)</esi:vars>', expected: 'a b|q=a%20b&amp;z=1' },
  { name: 'vars: accept-language boolean', headers: { 'accept-language': 'en-GB,en;q=0.9' }, template: '<esi:vars>$(HTTP_ACCEPT_LANGUAGE{en}) $(HTTP_ACCEPT_LANGUAGE{de})</esi:vars>', expected: 'true false' },
  { name: 'vars: user agent', headers: { 'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/120.0' }, template: '<esi:vars>$(HTTP_USER_AGENT{browser}) $(HTTP_USER_AGENT{os}) $(HTTP_USER_AGENT{version})</esi:vars>', expected: 'MOZILLA WIN 5.0' },
  { name: 'vars: MSIE user agent', headers: { 'user-agent': 'Mozilla/4.0 (compatible; MSIE 6.0; Mac_PowerPC Macintosh)' }, template: '<esi:vars>$(HTTP_USER_AGENT{browser}) $(HTTP_USER_AGENT{os}) $(HTTP_USER_AGENT{version})</esi:vars>', expected: 'MSIE MAC 6.0' },
  { name: 'vars: values are HTML-escaped', headers: { cookie: 'name=<script>alert("x")</script>&' }, template: '<esi:vars>$(HTTP_COOKIE{name})</esi:vars>', expected: '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;' },
  { name: 'vars: query value escaped', url: "http://site.test/p?q=%3Cimg%20onerror%3D'x'%3E", template: '<esi:vars>$(QUERY_STRING{q})</esi:vars>', expected: '&lt;img onerror=&#39;x&#39;&gt;' },
  { name: 'variables outside vars are not substituted', headers: { cookie: 'name=Ann' }, template: '$(HTTP_COOKIE{name})<esi:comment text=""/>', expected: '$(HTTP_COOKIE{name})' },
  { name: 'vars: includes inside vars work', headers: { cookie: 'n=1' }, template: '<esi:vars>$(HTTP_COOKIE{n})<esi:include src="/a"/></esi:vars>', fragments: frags, expected: '1A' },
  { name: 'vars: malformed reference stays literal', template: '<esi:vars>$(HTTP_COOKIE{x price $(5</esi:vars>', expected: '$(HTTP_COOKIE{x price $(5' },
  { name: 'vars: unknown variable is empty (or its default)', template: "<esi:vars>[$(HTTP_X_FOO)][$(HTTP_X_FOO|'d')]</esi:vars>", expected: '[][d]' },

  // variables in src (URL-encoded)
  { name: 'src: cookie variable URL-encoded', headers: { cookie: 'user=a b&c=d/e' }, template: '<esi:include src="/u?name=$(HTTP_COOKIE{user})"/>', fragments: { '/u?name=a%20b%26c%3Dd%2Fe': 'U' }, expected: 'U' },
  { name: 'src: path traversal in a variable stays one segment', headers: { cookie: 'p=../admin' }, template: '<esi:include src="/p/$(HTTP_COOKIE{p})"/>', fragments: { '/p/..%2Fadmin': 'SAFE', '/admin': 'ADMIN' }, expected: 'SAFE' },
  { name: 'src: default is template text, not encoded', template: "<esi:include src=\"/u?$(QUERY_STRING{x}|'a=1&b=2')\"/>", fragments: { '/u?a=1&b=2': 'D' }, expected: 'D' },
  { name: 'src: query param in path', url: 'http://site.test/p?id=42', template: '<esi:include src="/item/$(QUERY_STRING{id})"/>', fragments: { '/item/42': 'item42' }, expected: 'item42' },
  { name: 'alt with variable', headers: { cookie: 'g=x' }, template: '<esi:include src="/nope" alt="/g/$(HTTP_COOKIE{g})"/>', fragments: { '/g/x': 'GX' }, expected: 'GX' },

  // templates need not be HTML
  { name: 'JSON template', template: '{"user":<esi:include src="/u.json"/>,"n":1}', fragments: { '/u.json': '{"name":"ann"}' }, expected: '{"user":{"name":"ann"},"n":1}' },
  { name: 'ESI inside <script> is processed', template: '<script>var u = "<esi:include src="/a"/>";</script>', fragments: frags, expected: '<script>var u = "A";</script>' },
  { name: 'ESI inside <style> is processed', template: '<style><esi:remove>x</esi:remove>b{}</style>', expected: '<style>b{}</style>' },
  { name: 'UTF-8 text around tags survives', template: 'héllo <esi:include src="/a"/> wörld ✓', fragments: frags, expected: 'héllo A wörld ✓' },
]

describe('ESI 1.0 conformance', () => {
  it.each(rows)('$name', async (row) => {
    const { body } = await run(row.template, row)
    expect(body).toBe(row.expected)
  })

  it('every row exercises ESI (the table cannot pass by passing templates through)', () => {
    for (const row of rows) expect(compile(row.template).hasEsi, row.name).toBe(true)
  })
})
