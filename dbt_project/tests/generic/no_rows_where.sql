{# Rows that break an invariant, stated as the condition a bad row meets. #}
{% test no_rows_where(model, condition) %}
select *
from {{ model }}
where {{ condition }}
{% endtest %}
