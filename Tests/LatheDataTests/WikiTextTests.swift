// Wiki markup to plain text, on hand-written snippets: each construct, malformed markup, and inputs built to make
// a careless stripper quadratic.

import Foundation
@testable import LatheData
import Testing

@Test(arguments: [
  // Links, bold, italic, templates and references in one sentence.
  ("'''Anarchism''' is a [[political philosophy]] that {{Citation needed|date=May 2016}} advocates [[self-governance|self-governed]] ''societies''.<ref name=\"x\">{{cite book|title=[[Foo]]}}</ref>",
   "Anarchism is a political philosophy that advocates self-governed societies."),
  // Nested templates, and a template holding a link and a table-like pipe.
  ("a {{outer|{{inner|{{deep}}}}|x=[[y|z]]}} b {{{{x}}|{|}} c", "a b c"),
  // Unclosed and stray brackets: the tokens go, the text around them stays.
  ("a {{unclosed b", "a unclosed b"),
  ("c ]] d }} e", "c d e"),
  ("[[Link without end", "Link without end"),
  ("x [[a|b}} y", "x a|b y"),
  ("p [[q {{r]] s", "p q r s"),
  // Files, images, categories and interlanguage links show nothing; a leading colon or a piped interwiki shows.
  ("[[File:Foo.jpg|thumb|A [[caption]] {{here}}]]Text [[Category:Anarchism]][[de:Anarchismus]] [[image:x.png]]",
   "Text"),
  ("see [[:Category:Anarchism]] and [[wikt:word|word]] [[Foo#Bar|bar]]", "see Category:Anarchism and word bar"),
  // Headings, list markers, rules.
  ("== History ==\n=== Early ''era'' ===\nText.", "History\nEarly era\nText."),
  ("* one\n# two\n:: three\n; four\n----\nfive", "one\ntwo\nthree\nfour\n\nfive"),   // a rule ends a paragraph
  // Tables, at a line start (also indented), are dropped, leaving a paragraph break; a stray close is text.
  ("before\n{| class=\"wikitable\"\n|-\n| a || b\n|}\nafter", "before\n\nafter"),
  ("x\n:{| \n| in {{t}}\n|}\ny |} z", "x\n\ny |} z"),
  ("unclosed\n{| class=\"t\"\n| cell", "unclosed\nclass=\"t\"\n| cell"),
  // Entities: named, numeric, unknown.
  ("AT&amp;T &lt;3 &quot;q&quot; a&nbsp;b &ndash; &#x41;&#66; &bogus; & alone", "AT&T <3 \"q\" a b – AB &bogus; & alone"),
  // Comments, references, other tags.
  ("a <!-- hidden --> b <!-- never closed\nstill hidden", "a b"),
  ("x<ref name=\"a\"/> y<ref>unclosed", "x yunclosed"),
  ("<small>tiny</small> <br/>line x<y and z>w <math>e^{i\\pi}</math>!", "tiny line x<y and z>w !"),
  ("q<REF>upper case</Ref>r", "qr"),
  // External links, magic words, apostrophes.
  ("[http://example.org Example site] and [https://x.org] [not a link]", "Example site and [not a link]"),
  ("[http://x.org/?a=1&amp;b ''Title'' (at [[Berkeley|UC Berkeley]], {{date}} 1962)] [http://y [http://z w] [[q]]",
   "Title (at UC Berkeley, 1962) [http://y w q"),
  ("__NOTOC__ It's '''''both''''' and ''''four''''", "It's both and four"),
  // Blank-line runs collapse to one; ends trimmed.
  ("\n\n  a  \n\n\n\n b \n\n", "a\n\nb"),
  ("", ""),
  ("{{only a template}}", ""),
])
func plainTextStripsMarkup(markup: String, expected: String) {
  #expect(WikiText.plainText(markup) == expected)
}

@Test func dumpPagesSkipRedirectsAndOtherNamespaces() {
  let dump = """
    <mediawiki><siteinfo><sitename>Wikipedia</sitename></siteinfo>
      <page><title>AccessibleComputing</title><ns>0</ns><redirect title="Computer accessibility" />
        <revision><text xml:space="preserve">#REDIRECT [[Computer accessibility]]</text></revision></page>
      <page><title>AT&amp;T</title><ns>0</ns><id>1</id>
        <revision><text xml:space="preserve">'''AT&amp;amp;T''' is a [[company]].&lt;ref&gt;cite&lt;/ref&gt;
    == History ==
    Founded.</text></revision></page>
      <page><title>Wikipedia:About</title><ns>4</ns><revision><text>Project page</text></revision></page>
      <page><title>Empty</title><ns>0</ns><revision><text /></revision></page>
      <page><title>Cut off</title><ns>0</ns><revision><text>Last [[words
    """
  let pages = WikiText.pages(xml: Array(dump.utf8))
  #expect(pages.map(\.title) == ["AccessibleComputing", "AT&T", "Wikipedia:About", "Empty", "Cut off"])
  #expect(pages.map(\.namespace) == [0, 0, 4, 0, 0])
  #expect(pages.map(\.isRedirect) == [true, false, false, false, false])
  #expect(pages[1].markup.hasPrefix("'''AT&amp;T''' is a [[company]].<ref>cite</ref>"))
  #expect(pages[3].markup == "")
  #expect(WikiText.articlesText(xml: Array(dump.utf8)) == "AT&T\nAT&T is a company.\nHistory\nFounded.\n\nEmpty\n\nCut off\nLast words")
  #expect(WikiText.pages(xml: []).isEmpty && WikiText.pages(xml: Array("<page".utf8)).isEmpty)
}

/// Each input repeats an opener that is never closed (or a construct that needs a forward search) 100,000 times;
/// a stripper that searched from every one of them to the end would take minutes on these.
@Test(arguments: ["{{", "[[", "}}]]", "<ref>", "<ref name=x", "<!--", "[http://a ", "&amp", "<b ", "'''", "\n{|", "[[File:",
                  "[[a|", "<math>x", "__A", "== x"])
func plainTextStaysLinearOnMalformedInput(unit: String) {
  let input = String(repeating: unit + "x ", count: 100_000)
  let clock = ContinuousClock()
  let start = clock.now
  let output = WikiText.plainText(input)
  let seconds = Double((clock.now - start).components.seconds) + Double((clock.now - start).components.attoseconds) * 1e-18
  #expect(output.utf8.count <= input.utf8.count)
  #expect(seconds < 10, "\(unit.debugDescription) × 100000 took \(seconds) s")
  print("timing: plainText(\(unit.debugDescription) × 100000, \(input.utf8.count) bytes): \(String(format: "%.3f", seconds)) s")
}

/// Random mixes of markup fragments (seeded): the stripper and the dump reader never crash and never grow the text.
/// (Brackets may remain here: "[" + dropped markup + "[" joins into "[[" after the markup goes.)
@Test func randomMarkupNeverCrashes() {
  let fragments = ["{{", "}}", "[[", "]]", "{|", "|}", "|", "\n", " ", "'''", "''", "<ref>", "</ref>", "<ref name=a/>",
                   "<!--", "-->", "&amp;", "&#x41;", "&#;", "&", "[http://x ", "]", "[", "==", "*", ":", "File:", "Category:",
                   "de:", "<b>", "</b>", "<br", ">", "__TOC__", "text", "é", "<page>", "</page>", "<title>", "<text>", "</text>"]
  var state: UInt64 = 42
  func next(_ n: Int) -> Int {
    state = state &* 6364136223846793005 &+ 1442695040888963407
    return Int((state >> 33) % UInt64(n))
  }
  for _ in 0..<2000 {
    let markup = (0..<next(40)).map { _ in fragments[next(fragments.count)] }.joined()
    let text = WikiText.plainText(markup)
    #expect(text.utf8.count <= markup.utf8.count, "\(markup.debugDescription) → \(text.debugDescription)")
    _ = WikiText.articlesText(xml: Array(markup.utf8))
  }
}
