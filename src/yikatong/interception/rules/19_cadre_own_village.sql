-- code: CADRE_OWN_VILLAGE
-- name: 村干部本人或近亲属在本村申领
-- severity: 中
-- items: all
-- datasets: village_cadres
-- explanation: 申请人是本村（社区）干部本人或其近亲属，申请又在本村评议和公示。按规定村干部及其近亲属享受补贴
--   应单独登记备案、公开，防止优亲厚友。本标记不说明申请一定不合规：经办部门应核实是否已按规定备案公示、
--   申请条件是否真实，评议时本人是否回避。
SELECT a.application_id,
       CASE WHEN v.relation = '本人' OR v.cadre_id_hash = v.id_hash
            THEN '申请人本人是本村（' || v.region_code || '）' || v.post
            ELSE '申请人是本村（' || v.region_code || '）' || v.post || '（' || v.cadre_id_masked || '）的' || v.relation
       END AS evidence,
       v.cadre_id_hash || ':' || v.post AS fact_key
FROM applications a
JOIN persons p ON p.person_id = a.person_id
JOIN village_cadres v ON v.id_hash = p.id_hash AND v.region_code = a.region_code
