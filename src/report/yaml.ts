import { Document, isScalar, visit } from 'yaml';

/** YAML with short lists and maps of scalars in flow style (`key: [email]`), as people write it. */
export function toYaml(value: unknown): string {
  const doc = new Document(value);
  // Two passes: lists of scalars first, so a map holding only those can then be flowed too.
  visit(doc, {
    Seq(_, node) {
      if (node.items.every((i) => isScalar(i))) node.flow = true;
    },
  });
  visit(doc, {
    Map(_, node) {
      if (node.items.every((p) => isScalar(p.value) || (p.value as { flow?: boolean })?.flow)) node.flow = true;
    },
  });
  // A list of rules keeps each rule (the outer item) in block style.
  const top = doc.contents as { items?: { flow?: boolean }[] } | null;
  top?.items?.forEach((item) => {
    item.flow = false;
  });
  return doc.toString({ flowCollectionPadding: false });
}
