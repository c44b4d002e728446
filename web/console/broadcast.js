// broadcast.js - 配信状況 (#b/<name>): one broadcast (console-core).
'use strict';
KN.page('b', (root, name) => {
  root.append(KN.el('h1', null, KN.t('bc.title')), KN.el('p', null, name));
});
