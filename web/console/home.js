// home.js - ホーム: the tenant's broadcasts (console-core).
'use strict';
KN.page('home', (root) => {
  root.append(KN.el('h1', null, KN.t('home.title')));
});
